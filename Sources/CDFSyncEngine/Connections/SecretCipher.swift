import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the key that encrypts stored secrets comes from.
public enum SecretKeySource: Sendable, Equatable, CustomStringConvertible {
    /// `CDFSYNC_SECRET_KEY`: base64 of 32 bytes.
    case environment
    /// A key file holding base64 of 32 bytes, mode 0600.
    case file(String)

    public var description: String {
        switch self {
        case .environment: "CDFSYNC_SECRET_KEY"
        case .file(let path): "key file \(path)"
        }
    }
}

/// AES-256-GCM encryption of stored secrets (swift-crypto).
///
/// Each secret gets a fresh random 96-bit nonce; the connection name is the authenticated data, so a sealed
/// secret copied under another connection name does not decrypt. The stored form is
/// `0x01 || nonce (12) || ciphertext || tag (16)`.
///
/// The key comes from `CDFSYNC_SECRET_KEY` (base64 of 32 bytes) when set, otherwise from `<config-dir>/secret.key`,
/// which is created with mode 0600 on first use and refused when its mode lets group or others access it.
public struct SecretCipher: Sendable {
    /// The environment variable that holds the key.
    public static let keyVariable = "CDFSYNC_SECRET_KEY"
    /// The format byte in front of each sealed secret.
    static let version: UInt8 = 1

    let key: SymmetricKey
    /// Where the key came from, for messages.
    public let source: SecretKeySource

    /// A cipher with an explicit key (32 bytes).
    public init(keyBytes: [UInt8], source: SecretKeySource) throws {
        guard keyBytes.count == 32 else {
            throw DatabricksError(.configuration, "the secret key from \(source) is \(keyBytes.count) bytes, not 32",
                remedy: "Use base64 of exactly 32 random bytes, e.g. `head -c 32 /dev/urandom | base64`.")
        }
        key = SymmetricKey(data: keyBytes)
        self.source = source
    }

    /// Loads the key: `CDFSYNC_SECRET_KEY` when set, else `<directory>/secret.key`.
    ///
    /// - Parameters:
    ///   - directory: the config directory.
    ///   - environment: the process environment.
    ///   - create: create the key file (mode 0600) when it does not exist. Pass `true` only when storing a secret.
    /// - Throws: `DatabricksError` `.configuration` when the key is malformed, missing (and `create` is false),
    ///   or the key file is readable by group or others.
    public static func load(directory: String, environment: [String: String], create: Bool) throws -> SecretCipher {
        if let text = environment[keyVariable] {
            guard let bytes = decodeKey(text) else {
                throw DatabricksError(.configuration, "\(keyVariable) is not base64 of 32 bytes",
                    remedy: "Set \(keyVariable) to base64 of exactly 32 random bytes, e.g. `head -c 32 /dev/urandom | base64`.")
            }
            return try SecretCipher(keyBytes: bytes, source: .environment)
        }
        let path = keyFilePath(directory: directory)
        var st = stat()
        if stat(path, &st) != 0 {
            let err = errno
            guard err == ENOENT else {
                throw DatabricksError(.configuration, "cannot read the key file \(path) (\(String(cString: strerror(err))))",
                    remedy: "Check the permissions of the config directory, or set \(keyVariable).")
            }
            guard create else {
                throw DatabricksError(.configuration, "no secret key: neither \(keyVariable) nor \(path) exists",
                    remedy: "Restore the key file the secrets were stored with, set \(keyVariable), or store the secret again (connection add --replace).")
            }
            return try createKeyFile(path: path, directory: directory)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw DatabricksError(.configuration, "the key file \(path) is not a regular file",
                remedy: "Remove it; cdfsync creates a new key file when it next stores a secret.")
        }
        if let mode = PrivateFiles.widerThan(path, allowed: PrivateFiles.fileMode) {
            throw DatabricksError(.configuration,
                "refusing the key file \(path): its mode \(PrivateFiles.octal(mode)) lets group or others access it",
                remedy: "Run `chmod 600 \(path)` (and check nobody else copied it), or set \(keyVariable) instead.")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatabricksError(.configuration, "cannot read the key file \(path)",
                remedy: "Check that the file belongs to the user running cdfsync.")
        }
        guard let bytes = decodeKey(String(decoding: data, as: UTF8.self)) else {
            throw DatabricksError(.configuration, "the key file \(path) does not hold base64 of 32 bytes",
                remedy: "Restore the original key file; without it the stored secrets cannot be decrypted.")
        }
        return try SecretCipher(keyBytes: bytes, source: .file(path))
    }

    /// `<directory>/secret.key`.
    public static func keyFilePath(directory: String) -> String {
        FilePaths.child(directory, "secret.key") ?? "secret.key"
    }

    static func decodeKey(_ text: String) -> [UInt8]? {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32
        else { return nil }
        return Array(data)
    }

    private static func createKeyFile(path: String, directory: String) throws -> SecretCipher {
        try ConfigDirectory.create(directory)
        let key = SymmetricKey(size: .bits256)
        let bytes = key.withUnsafeBytes { Array($0) }
        let text = Data(bytes).base64EncodedString() + "\n"
        // O_EXCL: never overwrite a key that appeared meanwhile; 0600 from the start.
        let fd: Int32
        do {
            fd = try PrivateFiles.open(path, flags: O_WRONLY | O_EXCL)
        } catch let e as StorageError {
            if (e.underlying as? SystemErrno)?.code == EEXIST {
                throw DatabricksError(.configuration, "the key file \(path) appeared while creating it",
                    remedy: "Another cdfsync process created it; run the command again.")
            }
            throw DatabricksError(.configuration, "cannot create the key file \(path) (\(e.message))",
                remedy: "Check the permissions of the config directory, or set \(keyVariable).")
        }
        defer { close(fd) }
        let written = text.utf8CString.withUnsafeBufferPointer { buf in write(fd, buf.baseAddress, buf.count - 1) }
        guard written == text.utf8.count, fsync(fd) == 0 else {
            unlink(path)
            throw DatabricksError(.configuration, "cannot write the key file \(path)",
                remedy: "Check free space and permissions of the config directory.")
        }
        return try SecretCipher(keyBytes: bytes, source: .file(path))
    }

    /// Encrypts `secret`, binding it to `connection`.
    public func seal(_ secret: Secret, connection: String) throws -> [UInt8] {
        let box = try AES.GCM.seal(Data(secret.reveal().utf8), using: key, nonce: AES.GCM.Nonce(),
            authenticating: Data(connection.utf8))
        guard let combined = box.combined else {
            throw DatabricksError(.configuration, "encryption produced no output", remedy: "Report this as a bug.")
        }
        return [Self.version] + Array(combined)
    }

    /// Decrypts a secret sealed for `connection`.
    /// - Throws: `DatabricksError` `.configuration` when the key is not the one it was sealed with, or the data
    ///   is damaged or belongs to another connection.
    public func open(_ sealed: [UInt8], connection: String) throws -> Secret {
        guard sealed.first == Self.version, sealed.count >= 1 + 12 + 16 else {
            throw DatabricksError(.configuration, "the stored secret of connection '\(connection)' is damaged",
                remedy: "Store the secret again: cdfsync connection add \(connection) ... --secret-stdin --replace.")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: Data(sealed.dropFirst()))
            let plain = try AES.GCM.open(box, using: key, authenticating: Data(connection.utf8))
            return Secret(String(decoding: plain, as: UTF8.self))
        } catch {
            throw DatabricksError(.configuration,
                "cannot decrypt the stored secret of connection '\(connection)' with the key from \(source)",
                remedy: "This is not the key the secret was stored with: restore that key (\(Self.keyVariable) or the key file), or store the secret again with --replace.")
        }
    }
}

/// The config directory (`--config-dir`, `$CDFSYNC_CONFIG_DIR`, or `~/.config/cdfsync`).
public enum ConfigDirectory {
    /// The variable naming the config directory.
    public static let variable = "CDFSYNC_CONFIG_DIR"

    /// `explicit`, else `$CDFSYNC_CONFIG_DIR`, else `$XDG_CONFIG_HOME/cdfsync`, else `~/.config/cdfsync`.
    public static func resolve(_ explicit: String?, environment: [String: String]) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let v = environment[variable], !v.isEmpty { return v }
        if let x = environment["XDG_CONFIG_HOME"], !x.isEmpty { return x + "/cdfsync" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.config/cdfsync"
    }

    /// Creates the directory (and parents) with mode 0700 when missing.
    static func create(_ path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else {
                throw DatabricksError(.configuration, "the config directory \(path) is a file",
                    remedy: "Pass --config-dir pointing to a directory.")
            }
            return
        }
        do {
            try PrivateFiles.makeDirectory(path)
        } catch let e as StorageError {
            throw DatabricksError(.configuration, "cannot create the config directory: \(e.message)",
                remedy: "Check permissions, or pass --config-dir / set \(variable).")
        }
    }
}
