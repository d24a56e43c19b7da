// Readiness probe used by scripts/kafka.sh, run with Java's single-file
// source launcher on the broker's own classpath:
//
//   java -cp "libs/*" scripts/kafka/KafkaReady.java 127.0.0.1:19092
//
// Exits 0 once the broker answers a real metadata request (DescribeCluster)
// listing at least one live broker, 1 otherwise.

import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;

public class KafkaReady {
    public static void main(String[] args) {
        String bootstrap = args.length > 0 ? args[0] : "127.0.0.1:19092";
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "clickstream-kafka-ready");
        try (Admin admin = Admin.create(p)) {
            DescribeClusterResult r = admin.describeCluster();
            String clusterId = r.clusterId().get(5, TimeUnit.SECONDS);
            int brokers = r.nodes().get(5, TimeUnit.SECONDS).size();
            admin.listTopics().names().get(5, TimeUnit.SECONDS);
            if (brokers < 1) {
                System.err.println("no live broker yet");
                System.exit(1);
            }
            System.out.println("cluster " + clusterId + " ready, " + brokers + " broker(s)");
            System.exit(0);
        } catch (Exception e) {
            System.err.println("not ready: " + e);
            System.exit(1);
        }
    }
}
