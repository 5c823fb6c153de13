package io.sessionwarden.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class RecordsTest {
    private static Options options(Map<String, String> config) {
        return Options.from(config::get);
    }

    private static final Options DEFAULTS = options(Map.of("bootstrap-servers", "b:9092"));

    @Test
    void loginCarriesTheMappedFields() {
        Records.Out out = Records.login(DEFAULTS, "7f3c2a39-2d7a-4e1a-9d8e-0a1b2c3d4e5f", 1_700_000_000_123L,
                "acme", "u-1", "s-1", 1_700_000_000_000L, List.of("viewer", "admin", "viewer"),
                Map.of("sessionwarden_risk_profile", List.of("high")), "10.0.0.1");
        assertEquals("u-1", out.key());
        assertEquals("{\"type\":\"login\",\"schema_version\":1,\"event_id\":\"7f3c2a39-2d7a-4e1a-9d8e-0a1b2c3d4e5f\","
                + "\"occurred_at\":\"2023-11-14T22:13:20.123Z\",\"user_id\":\"u-1\",\"tenant\":\"acme\","
                + "\"source\":\"keycloak:acme\",\"session_id\":\"s-1\",\"user_type\":\"standard\","
                + "\"risk_profile\":\"high\",\"roles\":[\"admin\",\"viewer\"],\"permissions\":[\"admin\",\"viewer\"],"
                + "\"auth_method\":\"password\",\"auth_time\":\"2023-11-14T22:13:20Z\",\"source_ip\":\"10.0.0.1\"}",
                out.value());
    }

    @Test
    void aBadAttributeFallsBackToTheDefaultProfile() {
        Mapping mapping = DEFAULTS.mapping();
        assertEquals("standard", mapping.userType(Map.of("sessionwarden_user_type", List.of("Admin!"))));
        assertEquals("admin", mapping.userType(Map.of("sessionwarden_user_type", List.of("admin"))));
    }

    @Test
    void permissionsFromANamedAttribute() {
        Options named = options(Map.of("bootstrap-servers", "b", "permissions-attribute", "perms"));
        assertEquals(List.of("docs.read"),
                named.mapping().permissions(Map.of("perms", List.of("docs.read", " bad")), List.of("viewer")));
    }

    @Test
    void unsendableValuesMakeNoRecord() {
        assertNull(Records.logout(DEFAULTS, null, 0, "acme", "u\n1", "s-1"));
        assertNull(Records.logout(DEFAULTS, null, 0, "acme", "u-1", "x".repeat(257)));
        assertNull(Records.roleChange(DEFAULTS, null, 0, "acme", "u-1", List.of(), List.of(), "a"));
    }

    @Test
    void nonUuidEventIdsAreDerivedStably() {
        String first = Records.eventId("abc", "logout");
        assertEquals(first, Records.eventId("abc", "logout"));
        assertTrue(first.matches("^[0-9a-f-]{36}$"));
    }

    @Test
    void rolesAreCappedAndControlCharactersEscaped() {
        List<String> many = new java.util.ArrayList<>();
        for (int i = 0; i < 80; i++) {
            many.add(String.format("r%02d", i));
        }
        assertEquals(Mapping.MAX_ROLES, Records.names(many, Mapping.MAX_ROLES).size());
        assertEquals("{\"a\":\"x\\u0085y\\\"\"}", Json.object(new java.util.LinkedHashMap<>(Map.of("a", "x\u0085y\""))));
    }

    @Test
    void theContractsProducerSettingsCannotBeOverridden() {
        java.nio.file.Path file = null;
        try {
            file = java.nio.file.Files.createTempFile("producer", ".properties");
            java.nio.file.Files.writeString(file, "acks=1\n");
            String path = file.toString();
            assertThrows(IllegalArgumentException.class,
                    () -> options(Map.of("bootstrap-servers", "b", "producer-config-file", path)));
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        } finally {
            if (file != null) {
                file.toFile().delete();
            }
        }
    }
}
