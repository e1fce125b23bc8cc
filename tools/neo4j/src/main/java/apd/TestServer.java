package apd;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilders;
import org.neo4j.io.ByteUnit;

/**
 * Neo4j 5 community on 127.0.0.1, on ports the OS picks (so parallel runs never collide),
 * with auth on and the password of user neo4j taken from APD_NEO4J_PASSWORD.
 *
 * Prints exactly one line, {@code ready bolt://127.0.0.1:P http://127.0.0.1:Q}, once a
 * Bolt handshake succeeds, then serves until SIGTERM / SIGINT and shuts the database down
 * cleanly (the shutdown hook). Usage: {@code TestServer WORKDIR [DATA_DIR]}: WORKDIR holds
 * the server's home and logs; DATA_DIR (optional) is a data directory to serve, e.g. one
 * written by {@code neo4j-admin database import} (tools/neo4j/admin).
 *
 * <p>The page cache is APD_NEO4J_PAGECACHE (default 512m): the harness's own default is
 * 8 MiB, so every uid lookup of a bulk write past a few thousand nodes went to disk and a
 * 60k-instance ingest took 140 s instead of seconds. It is off-heap and filled on demand.
 */
public final class TestServer {
    private TestServer() {}

    public static void main(String[] args) throws Exception {
        String password = System.getenv("APD_NEO4J_PASSWORD");
        if (args.length < 1 || args.length > 2) {
            fail("usage: serve WORKDIR [DATA_DIR]");
        }
        if (password == null || password.length() < 8) {
            fail("set APD_NEO4J_PASSWORD (8 or more characters): the password of user neo4j");
        }
        Path work = Path.of(args[0]).toAbsolutePath();
        Files.createDirectories(work);
        // Ports picked here, not by the connectors (port 0), so that the server advertises
        // them: Neo4j Browser connects to the Bolt address the HTTP discovery page names.
        SocketAddress bolt = new SocketAddress("127.0.0.1", freePort());
        SocketAddress http = new SocketAddress("127.0.0.1", freePort());
        var builder = Neo4jBuilders.newInProcessBuilder(work)
                .withConfig(GraphDatabaseSettings.auth_enabled, true)
                .withConfig(BoltConnector.enabled, true)
                .withConfig(BoltConnector.listen_address, bolt)
                .withConfig(BoltConnector.advertised_address, bolt)
                .withConfig(HttpConnector.enabled, true)
                .withConfig(HttpConnector.listen_address, http)
                .withConfig(HttpConnector.advertised_address, http)
                .withConfig(HttpsConnector.enabled, false)
                .withConfig(GraphDatabaseSettings.pagecache_memory, pageCache());
        if (args.length == 2) {
            builder = builder.withConfig(GraphDatabaseSettings.data_directory, Path.of(args[1]).toAbsolutePath());
        }
        Neo4j server = builder.build();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.close();
            stopped.countDown();
        }, "apd-neo4j-shutdown"));
        server.databaseManagementService().database("system").executeTransactionally(
                "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED", Map.of("password", password));
        handshake(bolt.getHostname(), bolt.getPort());
        System.out.println("ready bolt://127.0.0.1:" + bolt.getPort() + " http://127.0.0.1:" + http.getPort());
        System.out.flush();
        stopped.await();
    }

    private static long pageCache() {
        String size = System.getenv("APD_NEO4J_PAGECACHE");
        try {
            return ByteUnit.parse(size == null || size.isBlank() ? "512m" : size);
        } catch (IllegalArgumentException e) {
            fail("APD_NEO4J_PAGECACHE must be a size such as 512m or 2g (got " + size + ")");
            return 0;
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /** A Bolt version handshake: proves the port speaks Bolt, not only that it is bound. */
    private static void handshake(String host, int port) throws IOException {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(host, port), 5000);
            s.setSoTimeout(5000);
            OutputStream out = s.getOutputStream();
            out.write(new byte[] {0x60, 0x60, (byte) 0xB0, 0x17, 0, 0, 4, 5, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 0});
            out.flush();
            int version = new DataInputStream(s.getInputStream()).readInt();
            if (version == 0) {
                throw new IOException("the Bolt port agreed on no protocol version");
            }
        }
    }

    private static void fail(String line) {
        System.err.println(line);
        System.exit(2);
    }
}
