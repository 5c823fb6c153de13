package io.sessionwarden.keycloak;

import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;
import org.jboss.logging.Logger;

/**
 * One idempotent Kafka producer for the whole server (thread-safe), keyed by user_id with the
 * client's default murmur2 partitioner: the partition Sessionwarden's own producers choose.
 * Failures are logged by record type and realm only: never a session id or a token.
 */
final class Publisher implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Publisher.class);

    private final KafkaProducer<String, String> producer;
    private final String topic;
    final AtomicLong sent = new AtomicLong();
    final AtomicLong failed = new AtomicLong();

    Publisher(Options options) {
        Properties props = new Properties();
        props.putAll(options.producer());
        props.setProperty(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, options.bootstrapServers());
        props.setProperty(ProducerConfig.ACKS_CONFIG, "all");
        props.setProperty(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        this.topic = options.topic();
        // Kafka loads its plug-in classes through the context class loader: make it ours.
        Thread thread = Thread.currentThread();
        ClassLoader previous = thread.getContextClassLoader();
        thread.setContextClassLoader(Publisher.class.getClassLoader());
        try {
            this.producer = new KafkaProducer<>(props, new StringSerializer(), new StringSerializer());
        } finally {
            thread.setContextClassLoader(previous);
        }
    }

    void send(String realm, Records.Out out) {
        ProducerRecord<String, String> record = new ProducerRecord<>(topic, out.key(), out.value());
        try {
            producer.send(record, (metadata, error) -> {
                if (error == null) {
                    sent.incrementAndGet();
                } else {
                    failed.incrementAndGet();
                    LOG.warnf("sessionwarden: a %s record of realm %s was not delivered: %s",
                            out.type(), realm, error.getClass().getSimpleName() + ": " + error.getMessage());
                }
            });
        } catch (RuntimeException error) {
            failed.incrementAndGet();
            LOG.warnf("sessionwarden: a %s record of realm %s could not be queued: %s",
                    out.type(), realm, error.getClass().getSimpleName() + ": " + error.getMessage());
        }
    }

    @Override
    public void close() {
        producer.close();
    }
}
