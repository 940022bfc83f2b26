// The room's key for Parquet modular encryption, as a parquet-mr KMS client.
//
// parquet-mr's key tools wrap each file's data keys with a master key that a
// "KMS" hands out by name. The room has no KMS server: its master key is
// derived from the room secret in Python (HKDF, purpose "spark-parquet") and
// reaches the JVM in the Hadoop property below, set per read and write (never
// in the Spark configuration) under a name Spark's default redaction pattern
// (".*secret.*") hides from plans, logs and the UI. Keys are wrapped locally
// (AES-GCM, LocalWrapKmsClient), so the master key never leaves the JVM.
package cleanroom.kms;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import org.apache.parquet.crypto.KeyAccessDeniedException;
import org.apache.parquet.crypto.keytools.LocalWrapKmsClient;

public class RoomKeyKms extends LocalWrapKmsClient {
  /** "keyId:base64key[,keyId:base64key…]". */
  public static final String KEYS_PROPERTY = "cleanroom.parquet.secret.master.keys";

  private final Map<String, byte[]> keys = new HashMap<>();

  @Override
  protected void initializeInternal() throws KeyAccessDeniedException {
    String[] entries = hadoopConfiguration.getTrimmedStrings(KEYS_PROPERTY);
    if (entries == null || entries.length == 0) {
      throw new KeyAccessDeniedException("no room key in " + KEYS_PROPERTY);
    }
    for (String entry : entries) {
      int colon = entry.indexOf(':');
      if (colon <= 0) {
        throw new KeyAccessDeniedException("malformed entry in " + KEYS_PROPERTY);
      }
      keys.put(entry.substring(0, colon), Base64.getDecoder().decode(
          entry.substring(colon + 1).getBytes(StandardCharsets.US_ASCII)));
    }
  }

  @Override
  protected byte[] getMasterKeyFromServer(String keyIdentifier) throws KeyAccessDeniedException {
    byte[] key = keys.get(keyIdentifier);
    if (key == null) {
      throw new KeyAccessDeniedException("this room holds no key " + keyIdentifier);
    }
    return key;
  }
}
