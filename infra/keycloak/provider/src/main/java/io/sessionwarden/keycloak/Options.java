package io.sessionwarden.keycloak;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * The provider's configuration, from Keycloak's SPI options
 * ({@code --spi-events-listener--sessionwarden--<name>=...} or
 * {@code KC_SPI_EVENTS_LISTENER__SESSIONWARDEN__<NAME>}); see docs/KEYCLOAK.md.
 */
record Options(
        String bootstrapServers,
        String topic,
        Properties producer,
        Mapping mapping,
        boolean withSource,
        boolean signals,
        Set<String> realms,
        boolean global,
        int sessionCacheSize,
        Set<String> ignoredAdminClients) {

    /** Producer settings a configuration may not change: they are what the contract requires. */
    static final Set<String> FIXED = Set.of(
            "bootstrap.servers",
            "acks",
            "enable.idempotence",
            "key.serializer",
            "value.serializer",
            "partitioner.class",
            "partitioner.ignore.keys");

    /** SPI option → Kafka producer property, for the security settings and the usual tuning. */
    private static final String[][] PASSED = {
        {"client-id", "client.id"},
        {"security-protocol", "security.protocol"},
        {"sasl-mechanism", "sasl.mechanism"},
        {"sasl-jaas-config", "sasl.jaas.config"},
        {"ssl-truststore-location", "ssl.truststore.location"},
        {"ssl-truststore-password", "ssl.truststore.password"},
        {"ssl-truststore-type", "ssl.truststore.type"},
        {"ssl-keystore-location", "ssl.keystore.location"},
        {"ssl-keystore-password", "ssl.keystore.password"},
        {"ssl-keystore-type", "ssl.keystore.type"},
        {"ssl-key-password", "ssl.key.password"},
        {"ssl-endpoint-identification-algorithm", "ssl.endpoint.identification.algorithm"},
        {"linger-ms", "linger.ms"},
        {"max-block-ms", "max.block.ms"},
        {"delivery-timeout-ms", "delivery.timeout.ms"},
        {"request-timeout-ms", "request.timeout.ms"},
    };

    static Options from(Function<String, String> get) {
        String servers = get.apply("bootstrap-servers");
        Properties producer = new Properties();
        String file = get.apply("producer-config-file");
        if (file != null && !file.isBlank()) {
            try (InputStream in = Files.newInputStream(Path.of(file))) {
                producer.load(in);
            } catch (IOException e) {
                throw new IllegalArgumentException("cannot read producer-config-file " + file + ": " + e.getMessage());
            }
        }
        producer.putIfAbsent("client.id", "keycloak-sessionwarden");
        producer.putIfAbsent("linger.ms", "5");
        // A Keycloak request thread must not wait a minute for a broker that is down.
        producer.putIfAbsent("max.block.ms", "2000");
        for (String[] pair : PASSED) {
            String value = get.apply(pair[0]);
            if (value != null && !value.isBlank()) {
                producer.setProperty(pair[1], value);
            }
        }
        for (String fixed : FIXED) {
            if (producer.containsKey(fixed)) {
                throw new IllegalArgumentException("producer setting " + fixed + " is fixed by the provider");
            }
        }
        Mapping d = Mapping.defaults();
        Mapping mapping = new Mapping(
                or(get.apply("user-type-attribute"), d.userTypeAttribute()),
                or(get.apply("default-user-type"), d.defaultUserType()),
                or(get.apply("risk-profile-attribute"), d.riskProfileAttribute()),
                or(get.apply("default-risk-profile"), d.defaultRiskProfile()),
                or(get.apply("permissions-attribute"), d.permissionsAttribute()),
                or(get.apply("auth-method"), d.authMethod()));
        if (!Records.isToken(mapping.authMethod(), 32)) {
            throw new IllegalArgumentException("auth-method must be 1..32 characters without control characters");
        }
        Set<String> realms = list(get.apply("realms"));
        return new Options(
                servers == null || servers.isBlank() ? null : servers.trim(),
                or(get.apply("topic"), "auth.events"),
                producer,
                mapping,
                flag(get.apply("source"), true),
                flag(get.apply("signals"), true),
                realms,
                flag(get.apply("global"), false),
                Integer.parseInt(or(get.apply("session-cache-size"), "100000")),
                list(get.apply("ignore-admin-clients")));
    }

    private static Set<String> list(String listed) {
        Set<String> out = new TreeSet<>();
        if (listed != null) {
            Arrays.stream(listed.split(",")).map(String::trim).filter(s -> !s.isEmpty()).forEach(out::add);
        }
        return out;
    }

    boolean covers(String realm) {
        return realms.isEmpty() || realms.contains(realm);
    }

    private static String or(String value, String fallback) {
        return value == null ? fallback : value.trim();
    }

    private static boolean flag(String value, boolean fallback) {
        return value == null || value.isBlank() ? fallback : Boolean.parseBoolean(value.trim());
    }
}
