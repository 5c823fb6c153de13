package io.sessionwarden.keycloak;

import org.jboss.logging.Logger;
import org.keycloak.Config;
import org.keycloak.events.EventListenerProvider;
import org.keycloak.events.EventListenerProviderFactory;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;

/**
 * The {@code sessionwarden} event listener: enable it on a realm (Realm settings → Events →
 * Event listeners) or declare it global with {@code global=true}. Without
 * {@code bootstrap-servers} it is inert and says so once at start-up.
 */
public final class SessionwardenEventListenerFactory implements EventListenerProviderFactory {
    static final String ID = "sessionwarden";
    private static final Logger LOG = Logger.getLogger(SessionwardenEventListenerFactory.class);
    private static final EventListenerProvider INERT = new EventListenerProvider() {
        @Override
        public void onEvent(org.keycloak.events.Event event) {}

        @Override
        public void onEvent(org.keycloak.events.admin.AdminEvent event, boolean includeRepresentation) {}

        @Override
        public void close() {}
    };

    private Options options;
    private Publisher publisher;
    private SessionOwners owners;

    @Override
    public void init(Config.Scope config) {
        options = Options.from(config::get);
        if (options.bootstrapServers() == null) {
            LOG.warn("sessionwarden: no bootstrap-servers configured: the event listener publishes nothing");
            return;
        }
        publisher = new Publisher(options);
        owners = new SessionOwners(options.sessionCacheSize());
        LOG.infof("sessionwarden: publishing to topic %s at %s (realms: %s)", options.topic(),
                options.bootstrapServers(), options.realms().isEmpty() ? "all" : options.realms());
    }

    @Override
    public EventListenerProvider create(KeycloakSession session) {
        return publisher == null ? INERT : new SessionwardenEventListener(session, options, publisher, owners);
    }

    @Override
    public void postInit(KeycloakSessionFactory factory) {}

    @Override
    public void close() {
        if (publisher != null) {
            publisher.close();
        }
    }

    @Override
    public String getId() {
        return ID;
    }

    @Override
    public boolean isGlobal() {
        return options != null && options.global();
    }
}
