package io.sessionwarden.bench;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;

/**
 * The policy's effective timeout table, as bench/peer_policy.py writes it from our policy:
 * {"version", "clock_skew_tolerance", "table": {user_type|"*": {risk_profile|"*": [idle, abs]}}}
 * with seconds; "*" is the row or column for unlisted names. Lookups mirror
 * Policy.timeouts_for.
 */
final class Policy {
  final String version;
  final long clockSkewMicros;
  private final Map<String, Map<String, long[]>> table = new HashMap<>();

  private Policy(String version, long clockSkewMicros) {
    this.version = version;
    this.clockSkewMicros = clockSkewMicros;
  }

  static Policy load(JsonNode doc) {
    Policy p =
        new Policy(doc.get("version").asText(), micros(doc.get("clock_skew_tolerance").asDouble()));
    for (Iterator<Map.Entry<String, JsonNode>> rows = doc.get("table").fields(); rows.hasNext(); ) {
      Map.Entry<String, JsonNode> row = rows.next();
      Map<String, long[]> cells = new HashMap<>();
      for (Iterator<Map.Entry<String, JsonNode>> it = row.getValue().fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> cell = it.next();
        JsonNode v = cell.getValue();
        cells.put(cell.getKey(), new long[] {micros(v.get(0).asDouble()), micros(v.get(1).asDouble())});
      }
      p.table.put(row.getKey(), cells);
    }
    return p;
  }

  static long micros(double seconds) {
    return Math.round(seconds * 1_000_000d);
  }

  /** {idle, absolute} in microseconds. */
  long[] timeoutsFor(String userType, String riskProfile) {
    Map<String, long[]> row = table.get(userType);
    if (row == null) {
      row = table.get("*");
    }
    long[] found = row.get(riskProfile);
    return found == null ? row.get("*") : found;
  }
}
