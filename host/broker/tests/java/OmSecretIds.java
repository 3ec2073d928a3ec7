// Secret ids the way OpenMetadata's Java server computes them, written for this
// project's tests from a reading of OpenMetadata's Apache-2.0 sources
// (openmetadata-service/.../secrets/SecretsManager.java `buildSecretId`,
// ExternalSecretsManager `storeValue`, the Azure Key Vault, Google Secret Manager
// and Kubernetes managers' id settings, and the Kubernetes manager's object-name
// sanitising before and after upstream PR #25988). It runs on the JDK so that
// Java's own `String.toLowerCase`, `java.util.regex` and `String.hashCode`
// decide, not a re-implementation of them.
//
// Input on stdin, one case per line, fields separated by tabs:
//   style  prefix  cluster  entityType  entityName  field/path
// style is slash, azure, gcp, kubernetes or kubernetes-legacy; an empty prefix
// means none, an empty entityName means none (the server connection). Output:
// one id per line, or `error <message>`.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

public class OmSecretIds {
  record Config(String separator, boolean leading, String replacement, Pattern unwanted) {}

  static final Config SLASH = new Config("/", true, "_", Pattern.compile("[^A-Za-z0-9/_\\-]"));
  static final Config AZURE = new Config("-", false, "", Pattern.compile("[^A-Za-z0-9\\-]"));
  static final Config GCP = new Config("_", false, "", Pattern.compile("[^A-Za-z0-9_]"));
  static final Config K8S = new Config("-", false, "-", Pattern.compile("[^A-Za-z0-9\\-]"));

  // buildSecretId(addClusterPrefix, values...): the head (prefix and cluster
  // name, as configured) or the parent id as the first value, then each value
  // cleaned, joined by the separator, the whole lowercased.
  static String build(Config c, String prefix, String cluster, boolean withHead, String... values) {
    StringBuilder format = new StringBuilder();
    if (withHead) {
      if (prefix != null && !prefix.isEmpty()) {
        if (c.leading()) format.append(c.separator());
        format.append(prefix);
      }
      if (c.leading()) format.append(c.separator());
      format.append(cluster);
    } else {
      format.append("%s");
    }
    Object[] cleaned = new Object[values.length];
    for (int i = 0; i < values.length; i++) {
      cleaned[i] = c.unwanted().matcher(values[i]).replaceAll(c.replacement());
    }
    for (int i = withHead ? 0 : 1; i < cleaned.length; i++) {
      format.append(c.separator()).append("%s");
    }
    return String.format(format.toString(), cleaned).toLowerCase();
  }

  static String fieldId(Config c, String prefix, String cluster, String type, String name, String[] fields) {
    String id = name == null
        ? build(c, prefix, cluster, true, type)
        : build(c, prefix, cluster, true, type, name);
    for (String field : fields) {
      id = build(c, prefix, cluster, false, id, field.toLowerCase(Locale.ROOT));
    }
    return id;
  }

  // Kubernetes after PR #25988: the id built with `-`, then made an object name.
  static String k8sName(String id) {
    String s = id.toLowerCase().replaceAll("-+", "-").replaceAll("^-+|-+$", "");
    if (s.length() > 253) {
      s = s.substring(0, 253).replaceAll("-+$", "");
    }
    return s;
  }

  // Kubernetes before PR #25988: the `/` id mapped onto an object name.
  static String legacyK8sName(String id) {
    String s = id.replaceAll("^/+", "");
    s = s.replaceAll("[^a-zA-Z0-9-]", "-").toLowerCase();
    s = s.replaceAll("-+", "-").replaceAll("^-+|-+$", "");
    if (s.length() > 253) {
      s = s.substring(0, 240) + "-" + Integer.toHexString(id.hashCode());
    }
    if (!s.matches("^[a-z0-9].*")) {
      s = "om-" + s;
    }
    return s;
  }

  public static void main(String[] args) throws Exception {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    List<String> out = new ArrayList<>();
    String line;
    while ((line = in.readLine()) != null) {
      String[] f = line.split("\t", -1);
      String prefix = f[1], cluster = f[2], type = f[3];
      String name = f[4].isEmpty() ? null : f[4];
      String[] fields = f[5].split("/");
      try {
        out.add(switch (f[0]) {
          case "slash" -> fieldId(SLASH, prefix, cluster, type, name, fields);
          case "azure" -> fieldId(AZURE, prefix, cluster, type, name, fields);
          case "gcp" -> fieldId(GCP, prefix, cluster, type, name, fields);
          case "kubernetes" -> k8sName(fieldId(K8S, prefix, cluster, type, name, fields));
          case "kubernetes-legacy" -> legacyK8sName(fieldId(SLASH, prefix, cluster, type, name, fields));
          default -> throw new IllegalArgumentException("unknown style " + f[0]);
        });
      } catch (RuntimeException e) {
        out.add("error " + e);
      }
    }
    System.out.write(String.join("\n", out).concat("\n").getBytes(StandardCharsets.UTF_8));
    System.out.flush();
  }
}
