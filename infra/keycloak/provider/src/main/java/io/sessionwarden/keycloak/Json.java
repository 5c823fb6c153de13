package io.sessionwarden.keycloak;

import java.util.List;
import java.util.Map;

/** The few JSON shapes the records need: an object of strings and string lists. */
final class Json {
    private Json() {}

    static String object(Map<String, Object> fields) {
        StringBuilder out = new StringBuilder(256).append('{');
        boolean first = true;
        for (Map.Entry<String, Object> field : fields.entrySet()) {
            Object value = field.getValue();
            if (value == null) {
                continue;
            }
            if (!first) {
                out.append(',');
            }
            first = false;
            string(out, field.getKey()).append(':');
            if (value instanceof List<?> items) {
                out.append('[');
                for (int i = 0; i < items.size(); i++) {
                    if (i > 0) {
                        out.append(',');
                    }
                    string(out, String.valueOf(items.get(i)));
                }
                out.append(']');
            } else if (value instanceof Integer number) {
                out.append(number.intValue());
            } else {
                string(out, String.valueOf(value));
            }
        }
        return out.append('}').toString();
    }

    private static StringBuilder string(StringBuilder out, String text) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == '\u2028' || c == '\u2029') {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"');
    }
}
