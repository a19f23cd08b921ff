import COpenSSL

/// The OpenSSL linked into this binary, for `--version` (`BuildInfo.versionText`).
public enum OpenSSLInfo {
    /// As libcrypto itself reports it (OpenSSL_version(OPENSSL_VERSION), not
    /// the header's constant): "OpenSSL 3.0.22 25 Aug 2026". In a static
    /// binary that is the copy inside it, whatever the machine has installed.
    public static var versionText: String { String(cString: copenssl_version_text()) }

    /// OpenSSL_version_num() of the linked library (3.0.22: 0x30000160).
    public static var versionNumber: UInt { UInt(copenssl_version_num()) }
}
