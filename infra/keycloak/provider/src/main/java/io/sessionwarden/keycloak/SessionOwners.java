package io.sessionwarden.keycloak;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Which user holds a Keycloak session, learnt from that session's login and token events on
 * this node. Keycloak's admin event for a deleted session names only the session, after it is
 * gone; the record Sessionwarden needs is keyed by the user. Bounded (least recently used out).
 */
final class SessionOwners {
    private final Map<String, String> owners;

    SessionOwners(int capacity) {
        this.owners = new LinkedHashMap<>(1024, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, String> eldest) {
                return size() > capacity;
            }
        };
    }

    synchronized void seen(String sessionId, String userId) {
        if (sessionId != null && userId != null) {
            owners.put(sessionId, userId);
        }
    }

    synchronized String forget(String sessionId) {
        return sessionId == null ? null : owners.remove(sessionId);
    }

    synchronized int size() {
        return owners.size();
    }
}
