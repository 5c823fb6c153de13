package io.sessionwarden.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * Per input record: login opens a session (timeouts from the policy table), activity moves its
 * idle deadline, logout ends it; a request after a deadline ends the session at the deadline.
 * Deadlines sit in a second store ordered by (deadline, session) and are re-armed lazily, like
 * the enforcer's heap: activity only rewrites the session; a wall-clock punctuator pops what is
 * due, recomputes the real deadline, and either ends the session or re-arms it.
 */
final class EnforceProcessor implements Processor<String, byte[], String, byte[]> {
  static final AtomicLong LIVE = new AtomicLong();
  static final Duration PUNCTUATE_EVERY = Duration.ofMillis(50);
  private static final byte LIVE_SESSION = 1;
  private static final byte ENDED = 0;
  private static final byte[] EMPTY = new byte[0];

  private final Policy policy;
  private final ObjectMapper json = new ObjectMapper();
  private ProcessorContext<String, byte[]> context;
  private KeyValueStore<String, byte[]> sessions;
  private KeyValueStore<Bytes, byte[]> deadlines;

  EnforceProcessor(Policy policy) {
    this.policy = policy;
  }

  /** One session's state; ended sessions keep a marker (reason, end time). */
  static final class Session {
    boolean live;
    String userId;
    String tenant;
    long lastActivity;
    long idle;
    long absoluteDeadline;
    String roles;
    String permissions;

    long deadline() {
      return Math.min(absoluteDeadline, lastActivity + idle);
    }

    String reason() {
      return absoluteDeadline <= lastActivity + idle ? "absolute_timeout" : "idle_timeout";
    }

    byte[] encode() {
      ByteArrayOutputStream buf = new ByteArrayOutputStream(96);
      try (DataOutputStream out = new DataOutputStream(buf)) {
        out.writeByte(live ? LIVE_SESSION : ENDED);
        out.writeUTF(userId);
        out.writeUTF(tenant);
        out.writeLong(lastActivity);
        out.writeLong(idle);
        out.writeLong(absoluteDeadline);
        out.writeUTF(roles);
        out.writeUTF(permissions);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return buf.toByteArray();
    }

    static Session decode(byte[] raw) {
      Session s = new Session();
      try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(raw))) {
        s.live = in.readByte() == LIVE_SESSION;
        s.userId = in.readUTF();
        s.tenant = in.readUTF();
        s.lastActivity = in.readLong();
        s.idle = in.readLong();
        s.absoluteDeadline = in.readLong();
        s.roles = in.readUTF();
        s.permissions = in.readUTF();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return s;
    }
  }

  @Override
  public void init(ProcessorContext<String, byte[]> context) {
    this.context = context;
    this.sessions = context.getStateStore(SessionTimeouts.SESSIONS);
    this.deadlines = context.getStateStore(SessionTimeouts.DEADLINES);
    context.schedule(PUNCTUATE_EVERY, PunctuationType.WALL_CLOCK_TIME, this::fireDue);
  }

  @Override
  public void process(Record<String, byte[]> record) {
    if (SessionTimeouts.PROCESSED.get() == 0
        && SessionTimeouts.FIRST_NANOS.compareAndSet(0, System.nanoTime())) {
      SessionTimeouts.RSS_EMPTY.set(SessionTimeouts.rssBytes()); // before any session is held
    }
    try {
      handle(json.readTree(record.value()));
    } catch (IOException | RuntimeException e) {
      // hostile or broken input is skipped (the enforcer dead-letters it)
    }
    SessionTimeouts.PROCESSED.incrementAndGet();
  }

  private void handle(JsonNode e) {
    long t = micros(e.get("occurred_at").asText());
    long now = nowMicros();
    if (t > now + policy.clockSkewMicros) {
      return; // the enforcer dead-letters events from too far in the future
    }
    String type = e.get("type").asText();
    String sid = e.get("session_id").asText();
    switch (type) {
      case "login" -> login(e, sid, t);
      case "activity" -> activity(sid, t, now);
      case "logout" -> logout(sid, t, now);
      default -> {
        // role changes and high-risk operations are not part of this job
      }
    }
  }

  private void login(JsonNode e, String sid, long t) {
    if (sessions.get(sid) != null) {
      return; // a replayed login never resets or resurrects a session
    }
    long[] tm = policy.timeoutsFor(e.get("user_type").asText(), e.get("risk_profile").asText());
    Session s = new Session();
    s.live = true;
    s.userId = e.get("user_id").asText();
    s.tenant = e.get("tenant").asText();
    s.lastActivity = t;
    s.idle = tm[0];
    s.absoluteDeadline = t + tm[1];
    s.roles = e.get("roles").toString();
    s.permissions = e.get("permissions").toString();
    sessions.put(sid, s.encode());
    deadlines.put(deadlineKey(s.deadline(), sid), EMPTY);
    LIVE.incrementAndGet();
  }

  /** The session if it is live, else null. */
  private Session live(String sid) {
    byte[] raw = sessions.get(sid);
    Session s = raw == null ? null : Session.decode(raw);
    return s != null && s.live ? s : null;
  }

  private void activity(String sid, long t, long now) {
    Session s = live(sid);
    if (s == null) {
      return;
    }
    long deadline = s.deadline();
    if (deadline <= t) { // it had already ended when this request was made
      end(sid, s, s.reason(), deadline, now);
    } else if (t > s.lastActivity) {
      s.lastActivity = t;
      sessions.put(sid, s.encode());
    }
  }

  private void logout(String sid, long t, long now) {
    Session s = live(sid);
    if (s == null) {
      return;
    }
    long deadline = s.deadline();
    if (deadline <= t) {
      end(sid, s, s.reason(), deadline, now);
    } else {
      end(sid, s, "logout", t, now);
    }
  }

  private void fireDue(long wallMillis) {
    long until = wallMillis * 1000;
    List<KeyValue<Bytes, String>> due = new ArrayList<>();
    try (KeyValueIterator<Bytes, byte[]> it =
        deadlines.range(deadlineKey(0, ""), deadlineKey(until + 1, ""))) {
      while (it.hasNext()) {
        Bytes key = it.next().key;
        byte[] k = key.get();
        due.add(KeyValue.pair(key, new String(k, 8, k.length - 8, StandardCharsets.UTF_8)));
      }
    }
    long now = nowMicros();
    for (KeyValue<Bytes, String> entry : due) {
      deadlines.delete(entry.key);
      Session s = live(entry.value);
      if (s == null) {
        continue;
      }
      long deadline = s.deadline();
      if (deadline > until) {
        deadlines.put(deadlineKey(deadline, entry.value), EMPTY); // moved by activity: re-arm
      } else {
        end(entry.value, s, s.reason(), deadline, now);
      }
    }
  }

  private void end(String sid, Session s, String reason, long at, long now) {
    s.live = false;
    s.lastActivity = at; // the marker keeps the end time
    sessions.put(sid, s.encode());
    LIVE.decrementAndGet();
    ObjectNode out = json.createObjectNode();
    out.put("type", "revocation");
    out.put("session_id", sid);
    out.put("user_id", s.userId);
    out.put("tenant", s.tenant);
    out.put("reason", reason);
    out.put("effective_at", iso(at));
    out.put("emitted_at", iso(now));
    try {
      out.set("roles", json.readTree(s.roles));
      out.set("permissions", json.readTree(s.permissions));
      out.put("policy_version", policy.version);
      context.forward(new Record<>(sid, json.writeValueAsBytes(out), now / 1000));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static Bytes deadlineKey(long deadlineMicros, String sid) {
    byte[] s = sid.getBytes(StandardCharsets.UTF_8);
    return Bytes.wrap(ByteBuffer.allocate(8 + s.length).putLong(deadlineMicros).put(s).array());
  }

  static long micros(String iso) {
    Instant i = Instant.parse(iso);
    return i.getEpochSecond() * 1_000_000 + i.getNano() / 1000;
  }

  static long nowMicros() {
    Instant i = Instant.now();
    return i.getEpochSecond() * 1_000_000 + i.getNano() / 1000;
  }

  static String iso(long micros) {
    return Instant.ofEpochSecond(Math.floorDiv(micros, 1_000_000), Math.floorMod(micros, 1_000_000) * 1000)
        .toString();
  }
}
