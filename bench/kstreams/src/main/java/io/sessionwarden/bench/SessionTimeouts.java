package io.sessionwarden.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.state.Stores;

/**
 * The enforcer's session-timeout job on Kafka Streams (Processor API): idle and absolute
 * deadlines per session from the policy table, fired by a wall-clock punctuator (so silent
 * sessions end on time), revocations to an output topic, exactly_once_v2, RocksDB stores with
 * changelogs.
 *
 * <pre>
 * java -jar kstreams-peer.jar drain SERVERS APP_ID INPUT REVOCATIONS POLICY_JSON EVENTS
 * java -jar kstreams-peer.jar serve SERVERS APP_ID INPUT REVOCATIONS POLICY_JSON
 * </pre>
 *
 * drain: exits after EVENTS input records were processed and prints one JSON line (rate, RSS,
 * live sessions). serve: prints "running" once the streams client is RUNNING and runs until
 * SIGTERM.
 */
public final class SessionTimeouts {
  static final String SESSIONS = "sessions";
  static final String DEADLINES = "deadlines";
  static final AtomicLong PROCESSED = new AtomicLong();
  static final AtomicLong FIRST_NANOS = new AtomicLong();
  static final AtomicLong RSS_EMPTY = new AtomicLong();

  private SessionTimeouts() {}

  public static void main(String[] args) throws Exception {
    String mode = args[0];
    String servers = args[1];
    String appId = args[2];
    String input = args[3];
    String revocations = args[4];
    Policy policy = Policy.load(new ObjectMapper().readTree(Files.readString(Path.of(args[5]))));
    long total = mode.equals("drain") ? Long.parseLong(args[6]) : Long.MAX_VALUE;
    String stateDir = Files.createTempDirectory("kstreams-peer-").toString();

    Topology topology = new Topology();
    topology.addSource("input", Serdes.String().deserializer(), Serdes.ByteArray().deserializer(), input);
    topology.addProcessor("enforce", () -> new EnforceProcessor(policy), "input");
    topology.addStateStore(
        Stores.keyValueStoreBuilder(
            Stores.persistentKeyValueStore(SESSIONS), Serdes.String(), Serdes.ByteArray()),
        "enforce");
    topology.addStateStore(
        Stores.keyValueStoreBuilder(
            Stores.persistentKeyValueStore(DEADLINES), Serdes.Bytes(), Serdes.ByteArray()),
        "enforce");
    topology.addSink(
        "revocations",
        revocations,
        Serdes.String().serializer(),
        Serdes.ByteArray().serializer(),
        "enforce");

    KafkaStreams streams = new KafkaStreams(topology, config(servers, appId, stateDir));
    CountDownLatch running = new CountDownLatch(1);
    streams.setStateListener(
        (now, before) -> {
          if (now == KafkaStreams.State.RUNNING) {
            running.countDown();
          }
        });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> streams.close(Duration.ofSeconds(20))));
    streams.start();
    running.await();
    if (!mode.equals("drain")) {
      System.out.println("running");
      System.out.flush();
      new CountDownLatch(1).await();
      return;
    }
    while (PROCESSED.get() < total) {
      Thread.sleep(5);
    }
    double seconds = (System.nanoTime() - FIRST_NANOS.get()) / 1e9;
    long processed = PROCESSED.get();
    long live = EnforceProcessor.LIVE.get();
    System.gc();
    long rss = rssBytes();
    System.out.printf(
        "{\"events\": %d, \"seconds\": %.6f, \"rate\": %.3f, \"live_sessions\": %d,"
            + " \"rss_empty\": %d, \"rss_full\": %d, \"threads\": %s}%n",
        processed, seconds, processed / seconds, live, RSS_EMPTY.get(), rss, threads());
    System.out.flush();
    streams.close(Duration.ofSeconds(30));
    System.exit(0);
  }

  static String threads() {
    return System.getenv().getOrDefault("KSTREAMS_THREADS", "1");
  }

  static Properties config(String servers, String appId, String stateDir) {
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, servers);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(threads()));
    p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
    // One broker: internal topics (changelogs) cannot have the default replication of 3.
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    // The record cache coalesces store writes before they reach the changelog (the tuning the
    // Kafka Streams memory-management docs recommend); sized for the 1M-session run.
    p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 64L * 1024 * 1024);
    return p;
  }

  static long rssBytes() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("VmRSS:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        }
      }
    } catch (IOException e) {
      return 0;
    }
    return 0;
  }
}
