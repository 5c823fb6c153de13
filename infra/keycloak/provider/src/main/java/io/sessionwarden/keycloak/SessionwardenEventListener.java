package io.sessionwarden.keycloak;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.jboss.logging.Logger;
import org.keycloak.events.Event;
import org.keycloak.events.EventListenerProvider;
import org.keycloak.events.EventType;
import org.keycloak.events.admin.AdminEvent;
import org.keycloak.events.admin.OperationType;
import org.keycloak.events.admin.ResourceType;
import org.keycloak.models.AbstractKeycloakTransaction;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.models.RoleModel;
import org.keycloak.models.UserModel;
import org.keycloak.models.UserSessionModel;
import org.keycloak.representations.idm.RoleRepresentation;
import org.keycloak.util.JsonSerialization;

/**
 * Keycloak's user and admin events as Sessionwarden input records. The records are built while
 * Keycloak's transaction is open (the user's roles and attributes are read then) and sent only
 * once it has committed: a rolled-back change publishes nothing.
 */
final class SessionwardenEventListener implements EventListenerProvider {
    private static final Logger LOG = Logger.getLogger(SessionwardenEventListener.class);

    private final KeycloakSession session;
    private final Options options;
    private final Publisher publisher;
    private final SessionOwners owners;
    private List<Records.Out> pending;
    private String pendingRealm;

    SessionwardenEventListener(
            KeycloakSession session, Options options, Publisher publisher, SessionOwners owners) {
        this.session = session;
        this.options = options;
        this.publisher = publisher;
        this.owners = owners;
    }

    @Override
    public void onEvent(Event event) {
        String realmName = event.getRealmName();
        if (event.getError() != null || realmName == null || !options.covers(realmName)) {
            return;
        }
        EventType type = event.getType();
        if (type == EventType.LOGOUT) {
            owners.forget(event.getSessionId());
        } else if (type == EventType.LOGIN || type == EventType.REFRESH_TOKEN || type == EventType.CODE_TO_TOKEN) {
            owners.seen(event.getSessionId(), event.getUserId());
        }
        Records.Out out = switch (type) {
            case LOGIN -> login(event);
            case REFRESH_TOKEN -> Records.activity(options, event.getId(), event.getTime(), realmName,
                    event.getUserId(), event.getSessionId(), "token.refresh", event.getClientId());
            case CODE_TO_TOKEN -> Records.activity(options, event.getId(), event.getTime(), realmName,
                    event.getUserId(), event.getSessionId(), "token.code_to_token", event.getClientId());
            case LOGOUT -> Records.logout(options, event.getId(), event.getTime(), realmName,
                    event.getUserId(), event.getSessionId());
            default -> null;
        };
        queue(realmName, out);
    }

    private Records.Out login(Event event) {
        RealmModel realm = session.realms().getRealm(event.getRealmId());
        UserModel user = realm == null ? null : session.users().getUserById(realm, event.getUserId());
        if (user == null) {
            return null;
        }
        List<String> roles = realm.getRolesStream()
                .filter(user::hasRole)
                .map(RoleModel::getName)
                .collect(Collectors.toList());
        long authTime = event.getTime();
        UserSessionModel userSession = event.getSessionId() == null
                ? null : session.sessions().getUserSession(realm, event.getSessionId());
        if (userSession != null && userSession.getStarted() > 0) {
            authTime = userSession.getStarted() * 1000L;
        }
        return Records.login(options, event.getId(), event.getTime(), event.getRealmName(), user.getId(),
                event.getSessionId(), authTime, roles, user.getAttributes(), event.getIpAddress());
    }

    @Override
    public void onEvent(AdminEvent event, boolean includeRepresentation) {
        String realmName = event.getRealmName();
        if (event.getError() != null || realmName == null || !options.covers(realmName)) {
            return;
        }
        String[] path = event.getResourcePath() == null ? new String[0] : event.getResourcePath().split("/");
        ResourceType resource = event.getResourceType();
        OperationType op = event.getOperationType();
        String actor = event.getAuthDetails() == null ? null : event.getAuthDetails().getUserId();
        String actorClient = event.getAuthDetails() == null ? null : event.getAuthDetails().getClientId();
        if (actorClient != null && options.ignoredAdminClients().contains(actorClient)) {
            return;  // e.g. Sessionwarden's own revoker: its deletions are already known
        }
        Records.Out out = null;
        if (resource == ResourceType.REALM_ROLE_MAPPING && path.length >= 2 && "users".equals(path[0])) {
            List<String> names = roleNames(event.getRepresentation());
            if (names == null) {
                LOG.warnf("sessionwarden: a realm role mapping change in realm %s has no representation: "
                        + "turn on the realm's admin events with details (adminEventsDetailsEnabled)", realmName);
                return;
            }
            boolean added = op == OperationType.CREATE;
            out = Records.roleChange(options, event.getId(), event.getTime(), realmName, path[1],
                    added ? names : List.of(), added ? List.of() : names, actor);
        } else if (resource == ResourceType.USER_SESSION && op == OperationType.DELETE
                && path.length == 2 && "sessions".equals(path[0])) {
            String userId = owners.forget(path[1]);
            if (userId == null) {
                LOG.debugf("sessionwarden: a deleted session of realm %s was not seen on this node", realmName);
                return;
            }
            out = options.signals()
                    ? Records.sessionRevoked(options, event.getId(), event.getTime(), realmName, userId, path[1])
                    : Records.logout(options, event.getId(), event.getTime(), realmName, userId, path[1]);
        } else if (resource == ResourceType.USER && op == OperationType.ACTION && path.length == 3
                && "users".equals(path[0]) && "logout".equals(path[2]) && options.signals()) {
            out = Records.userRevoked(options, event.getId(), event.getTime(), realmName, path[1], "sessions_revoked");
        } else if (resource == ResourceType.USER && path.length == 2 && "users".equals(path[0]) && options.signals()) {
            if (op == OperationType.DELETE) {
                out = Records.userRevoked(options, event.getId(), event.getTime(), realmName, path[1], "account_purged");
            } else if (op == OperationType.UPDATE) {
                RealmModel realm = session.realms().getRealm(event.getRealmId());
                UserModel user = realm == null ? null : session.users().getUserById(realm, path[1]);
                if (user != null && !user.isEnabled()) {
                    out = Records.userRevoked(options, event.getId(), event.getTime(), realmName, path[1],
                            "account_disabled");
                }
            }
        }
        queue(realmName, out);
    }

    /** Role names from the representation Keycloak records with a role mapping change. */
    static List<String> roleNames(String representation) {
        if (representation == null || representation.isBlank()) {
            return null;
        }
        try {
            RoleRepresentation[] roles = JsonSerialization.readValue(representation, RoleRepresentation[].class);
            List<String> names = new ArrayList<>();
            for (RoleRepresentation role : roles) {
                if (role != null && role.getName() != null) {
                    names.add(role.getName());
                }
            }
            return names;
        } catch (java.io.IOException | RuntimeException unreadable) {
            return null;
        }
    }

    private void queue(String realm, Records.Out out) {
        if (out == null) {
            return;
        }
        if (pending == null) {
            pending = new ArrayList<>(2);
            pendingRealm = realm;
            List<Records.Out> batch = pending;
            String batchRealm = realm;
            session.getTransactionManager().enlistAfterCompletion(new AbstractKeycloakTransaction() {
                @Override
                protected void commitImpl() {
                    for (Records.Out record : batch) {
                        publisher.send(batchRealm, record);
                    }
                }

                @Override
                protected void rollbackImpl() {
                    // the change did not happen: nothing to publish
                }
            });
        }
        if (!realm.equals(pendingRealm)) {
            publisher.send(realm, out);  // one transaction, two realms: rare, send at once
            return;
        }
        pending.add(out);
    }

    @Override
    public void close() {}
}
