package io.sessionwarden.keycloak;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * How Keycloak's facts become the fields of Sessionwarden's login record: where user_type,
 * risk_profile, permissions and auth_method come from. Read once from the SPI configuration.
 */
record Mapping(
        String userTypeAttribute,
        String defaultUserType,
        String riskProfileAttribute,
        String defaultRiskProfile,
        String permissionsAttribute,
        String authMethod) {

    static final Pattern PROFILE = Pattern.compile("^[a-z][a-z0-9_-]{0,31}$");
    static final int MAX_ROLES = 64;
    static final int MAX_PERMISSIONS = 256;

    static Mapping defaults() {
        return new Mapping(
                "sessionwarden_user_type",
                "standard",
                "sessionwarden_risk_profile",
                "medium",
                "",
                "password");
    }

    Mapping {
        if (!PROFILE.matcher(defaultUserType).matches()) {
            throw new IllegalArgumentException("default-user-type must be a lowercase slug");
        }
        if (!PROFILE.matcher(defaultRiskProfile).matches()) {
            throw new IllegalArgumentException("default-risk-profile must be a lowercase slug");
        }
    }

    String userType(Map<String, List<String>> attributes) {
        return profile(attributes, userTypeAttribute, defaultUserType);
    }

    String riskProfile(Map<String, List<String>> attributes) {
        return profile(attributes, riskProfileAttribute, defaultRiskProfile);
    }

    /** The permissions attribute's values when one is named, else the realm roles. */
    List<String> permissions(Map<String, List<String>> attributes, List<String> roles) {
        if (permissionsAttribute.isEmpty()) {
            return roles;
        }
        List<String> values = attributes.getOrDefault(permissionsAttribute, List.of());
        List<String> kept = new ArrayList<>();
        for (String value : values) {
            if (Records.isToken(value, 128) && kept.size() < MAX_PERMISSIONS) {
                kept.add(value);
            }
        }
        return kept;
    }

    private static String profile(Map<String, List<String>> attributes, String name, String fallback) {
        if (name.isEmpty()) {
            return fallback;
        }
        List<String> values = attributes.get(name);
        if (values == null || values.isEmpty()) {
            return fallback;
        }
        String value = values.get(0);
        return value != null && PROFILE.matcher(value).matches() ? value : fallback;
    }
}
