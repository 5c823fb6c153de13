package io.sessionwarden.keycloak;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.UUID;
import java.util.regex.Pattern;

/**
 * Sessionwarden's input records (streams/sessionwarden/contracts/inputs.py) built from plain
 * values: pure, so the mapping is tested without a Keycloak server. Every text field is held to
 * the contract's limits here; a value that cannot be sent (a session id too long, a user id with
 * control characters) makes the record null rather than a record the enforcer would reject.
 */
final class Records {
    private Records() {}

    private static final Pattern TOKEN =
            Pattern.compile("^[^\\s\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029](?:[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*"
                    + "[^\\s\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029])?$");
    private static final Pattern TEXT = Pattern.compile("^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*$");

    /** One record to publish: the key (user_id) and the JSON value. */
    record Out(String key, String value, String type) {}

    static boolean isToken(String value, int max) {
        return value != null && value.length() <= max && TOKEN.matcher(value).matches();
    }

    /** Keycloak's event id when it is a UUID, else a UUID derived from it (stable on replays). */
    static String eventId(String keycloakId, String type) {
        if (keycloakId == null || keycloakId.isEmpty()) {
            return UUID.randomUUID().toString();
        }
        try {
            return UUID.fromString(keycloakId).toString();
        } catch (IllegalArgumentException notUuid) {
            return UUID.nameUUIDFromBytes((type + ":" + keycloakId).getBytes(StandardCharsets.UTF_8)).toString();
        }
    }

    private static Map<String, Object> head(
            String type, String eventId, long timeMillis, String userId, String realm, boolean withSource) {
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("type", type);
        doc.put("schema_version", 1);
        doc.put("event_id", eventId(eventId, type));
        doc.put("occurred_at", Instant.ofEpochMilli(timeMillis).toString());
        doc.put("user_id", userId);
        doc.put("tenant", realm);
        if (withSource) {
            doc.put("source", source(realm));
        }
        return doc;
    }

    static String source(String realm) {
        String source = "keycloak:" + realm;
        return source.length() <= 128 ? source : source.substring(0, 128);
    }

    private static boolean heads(String userId, String realm) {
        return isToken(userId, 128) && isToken(realm, 128);
    }

    /** Sorted, de-duplicated, valid names, at most {@code max}. */
    static List<String> names(Iterable<String> values, int max) {
        TreeSet<String> sorted = new TreeSet<>();
        for (String value : values) {
            if (isToken(value, 128)) {
                sorted.add(value);
            }
        }
        List<String> out = new ArrayList<>(sorted);
        return out.size() <= max ? out : out.subList(0, max);
    }

    static Out login(
            Options options,
            String eventId,
            long timeMillis,
            String realm,
            String userId,
            String sessionId,
            long authTimeMillis,
            List<String> realmRoles,
            Map<String, List<String>> attributes,
            String ipAddress) {
        if (!heads(userId, realm) || !isToken(sessionId, 256)) {
            return null;
        }
        Mapping mapping = options.mapping();
        List<String> roles = names(realmRoles, Mapping.MAX_ROLES);
        Map<String, Object> doc = head("login", eventId, timeMillis, userId, realm, options.withSource());
        doc.put("session_id", sessionId);
        doc.put("user_type", mapping.userType(attributes));
        doc.put("risk_profile", mapping.riskProfile(attributes));
        doc.put("roles", roles);
        doc.put("permissions", names(mapping.permissions(attributes, roles), Mapping.MAX_PERMISSIONS));
        doc.put("auth_method", mapping.authMethod());
        doc.put("auth_time", Instant.ofEpochMilli(authTimeMillis).toString());
        if (isToken(ipAddress, 45)) {
            doc.put("source_ip", ipAddress);
        }
        return new Out(userId, Json.object(doc), "login");
    }

    static Out activity(
            Options options,
            String eventId,
            long timeMillis,
            String realm,
            String userId,
            String sessionId,
            String action,
            String clientId) {
        if (!heads(userId, realm) || !isToken(sessionId, 256)) {
            return null;
        }
        Map<String, Object> doc = head("activity", eventId, timeMillis, userId, realm, options.withSource());
        doc.put("session_id", sessionId);
        doc.put("action", action);
        String resource = clientId == null ? "" : "client:" + clientId;
        doc.put("resource", resource.length() <= 512 && TEXT.matcher(resource).matches() ? resource : "");
        return new Out(userId, Json.object(doc), "activity");
    }

    static Out logout(Options options, String eventId, long timeMillis, String realm, String userId, String sessionId) {
        if (!heads(userId, realm) || !isToken(sessionId, 256)) {
            return null;
        }
        Map<String, Object> doc = head("logout", eventId, timeMillis, userId, realm, options.withSource());
        doc.put("session_id", sessionId);
        return new Out(userId, Json.object(doc), "logout");
    }

    static Out roleChange(
            Options options,
            String eventId,
            long timeMillis,
            String realm,
            String userId,
            List<String> granted,
            List<String> removed,
            String actor) {
        if (!heads(userId, realm)) {
            return null;
        }
        List<String> plus = names(granted, Mapping.MAX_ROLES);
        List<String> minus = names(removed, Mapping.MAX_ROLES);
        if (plus.isEmpty() && minus.isEmpty()) {
            return null;
        }
        Map<String, Object> doc = head("role_change", eventId, timeMillis, userId, realm, options.withSource());
        doc.put("roles_granted", plus);
        doc.put("roles_removed", minus);
        doc.put("actor", isToken(actor, 128) ? actor : "keycloak");
        return new Out(userId, Json.object(doc), "role_change");
    }

    /** The user lost every session: {@code signal} is account_disabled, account_purged or sessions_revoked. */
    static Out userRevoked(Options options, String eventId, long timeMillis, String realm, String userId, String signal) {
        if (!heads(userId, realm)) {
            return null;
        }
        Map<String, Object> doc = head("user_revoked", eventId, timeMillis, userId, realm, options.withSource());
        doc.put("signal", signal);
        return new Out(userId, Json.object(doc), "user_revoked");
    }

    /** One session ended by an administrator (Keycloak's admin API or console): signal session_revoked. */
    static Out sessionRevoked(
            Options options, String eventId, long timeMillis, String realm, String userId, String sessionId) {
        if (!heads(userId, realm) || !isToken(sessionId, 256)) {
            return null;
        }
        Map<String, Object> doc = head("session_revoked", eventId, timeMillis, userId, realm, options.withSource());
        doc.put("session_id", sessionId);
        doc.put("signal", "session_revoked");
        return new Out(userId, Json.object(doc), "session_revoked");
    }
}
