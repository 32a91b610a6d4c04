import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation

/// Saved connections in an LMDB environment under the config directory (`<config-dir>/connections/`).
///
/// Two databases: `connections` (name → JSON of ``SavedConnection``, never a secret) and `secrets`
/// (name → AES-256-GCM sealed secret, see ``SecretCipher``). A connection and its secret are written and removed
/// in one transaction.
///
/// - Important: open one store per config directory per process (LMDB's rule).
public final class ConnectionStore: Sendable {
    /// The config directory.
    public let directory: String
    let environment: [String: String]
    let env: LMDBEnvironment
    let connections: Database
    let secrets: Database

    /// Opens (creating if needed) the store.
    /// - Parameters:
    ///   - directory: the config directory; see ``ConfigDirectory/resolve(_:environment:)``.
    ///   - environment: where `CDFSYNC_SECRET_KEY` and secret variables are read from.
    public init(directory: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.directory = directory
        self.environment = environment
        try ConfigDirectory.create(directory)
        // Secrets are sealed, but the rest (hosts, names) is nobody else's business either: the environment's
        // directory is created 0700 and its files 0600 (PrivateFiles, as for the state directory).
        env = try LMDBEnvironment(directory: Self.environmentDirectory(directory), mapSize: 64 << 20, maxDatabases: 4)
        let dbs = try env.openDatabases(["connections", "secrets"])
        connections = dbs[0]
        secrets = dbs[1]
    }

    /// `<config-dir>/connections`.
    public static func environmentDirectory(_ directory: String) -> String {
        FilePaths.child(directory, "connections") ?? "connections"
    }

    /// Saves a connection. With `SecretSource.encrypted`, `secret` is sealed with the key (created on first use);
    /// with `.environment`, `secret` must be nil and any previously stored secret is removed.
    ///
    /// - Parameter replace: overwrite an existing connection of the same name (otherwise that is an error).
    /// - Throws: `DatabricksError` `.configuration` (name taken, missing secret, key problems) or `StorageError`.
    public func add(_ connection: SavedConnection, secret: Secret? = nil, replace: Bool = false) throws {
        var sealed: [UInt8]?
        switch connection.secret {
        case .encrypted:
            guard let secret, !secret.isEmpty else {
                throw DatabricksError(.configuration, "no secret given for connection '\(connection.name)'",
                    remedy: "Pipe the token or client secret into --secret-stdin, or use --token-env/--secret-env.")
            }
            let cipher = try SecretCipher.load(directory: directory, environment: environment, create: true)
            sealed = try cipher.seal(secret, connection: connection.name)
        case .environment(let variable):
            guard secret == nil else {
                throw DatabricksError(.configuration,
                    "connection '\(connection.name)' reads its secret from \(variable); a secret value was given as well",
                    remedy: "Either reference the variable (the value is never stored) or store the secret encrypted, not both.")
            }
        }
        let record: [UInt8]
        do {
            record = Array(try JSONEncoder().encode(StoredRecord(version: 1, connection: connection)))
        }
        try env.write { txn in
            let key = Array(connection.name.utf8)
            if !replace, try txn.get(connections, key: key) != nil {
                throw DatabricksError(.configuration, "a connection named '\(connection.name)' already exists",
                    remedy: "Pick another name, remove it first (cdfsync connection remove \(connection.name)), or pass --replace.")
            }
            try txn.put(connections, key: key, value: record)
            if let sealed {
                try txn.put(secrets, key: key, value: sealed)
            } else {
                _ = try txn.delete(secrets, key: key)
            }
        }
    }

    /// Every saved connection, sorted by name.
    public func list() throws -> [SavedConnection] {
        var out: [SavedConnection] = []
        try env.read { txn in
            try txn.forEach(connections) { _, value in
                out.append(try Self.decode(Array(value)))
                return true
            }
        }
        return out.sorted { $0.name < $1.name }
    }

    /// The connection called `name`.
    /// - Throws: `DatabricksError` `.configuration` when there is none.
    public func get(_ name: String) throws -> SavedConnection {
        guard let bytes = try env.read({ try $0.get(connections, key: Array(name.utf8)) }) else {
            let known = (try? list().map(\.name)) ?? []
            throw DatabricksError(.configuration, "no saved connection named '\(name)'",
                remedy: known.isEmpty
                    ? "Add one with `cdfsync connection add \(name) --host ... --warehouse-id ...`."
                    : "Known connections: \(known.joined(separator: ", ")). Add one with `cdfsync connection add`.")
        }
        return try Self.decode(bytes)
    }

    /// Removes a connection and its stored secret in one transaction.
    /// - Throws: `DatabricksError` `.configuration` when there is no such connection.
    public func remove(_ name: String) throws {
        let existed = try env.write { txn -> Bool in
            let key = Array(name.utf8)
            let had = try txn.delete(connections, key: key)
            _ = try txn.delete(secrets, key: key)
            return had
        }
        guard existed else {
            throw DatabricksError(.configuration, "no saved connection named '\(name)'",
                remedy: "See `cdfsync connection list` for the saved names.")
        }
    }

    /// Whether a sealed secret is stored for `name`.
    public func hasStoredSecret(_ name: String) throws -> Bool {
        try env.read { try $0.get(secrets, key: Array(name.utf8)) } != nil
    }

    /// The secret of a connection: decrypted, or read from its environment variable.
    /// - Throws: `DatabricksError` `.configuration` when the variable is unset, the key is missing or wrong.
    public func secret(for connection: SavedConnection) throws -> Secret {
        switch connection.secret {
        case .environment(let variable):
            guard let value = environment[variable], !value.isEmpty else {
                throw DatabricksError(.configuration,
                    "environment variable \(variable) (the \(connection.auth == .pat ? "token" : "client secret") of connection '\(connection.name)') is not set",
                    remedy: "Export \(variable), or store the secret encrypted with `cdfsync connection add \(connection.name) ... --secret-stdin --replace`.")
            }
            return Secret(value)
        case .encrypted:
            guard let sealed = try env.read({ try $0.get(secrets, key: Array(connection.name.utf8)) }) else {
                throw DatabricksError(.configuration, "the stored secret of connection '\(connection.name)' is missing",
                    remedy: "Store it again with `cdfsync connection add \(connection.name) ... --secret-stdin --replace`.")
            }
            let cipher = try SecretCipher.load(directory: directory, environment: environment, create: false)
            return try cipher.open(sealed, connection: connection.name)
        }
    }

    /// Resolves `name` to client settings (with its secret).
    public func resolve(_ name: String, transport: TransportOptions = TransportOptions()) throws -> ConnectionSettings {
        let c = try get(name)
        return try c.settings(secret: try secret(for: c), transport: transport)
    }

    // MARK: rendering

    /// `connection list`: one line per connection with name, host, warehouse, auth kind and secret source
    /// (never a secret value).
    public static func renderList(_ list: [SavedConnection]) -> String {
        guard !list.isEmpty else { return "no saved connections (add one with `cdfsync connection add`)" }
        let header = ["NAME", "HOST", "WAREHOUSE", "AUTH", "SECRET"]
        let rows = list.map { c in
            [c.name, c.host, c.warehouseID, c.auth == .oauthM2M ? "oauth-m2m (\(c.clientID ?? ""))" : "pat",
             c.secret.description]
        }
        let widths = (0..<header.count).map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, s in
                i == cells.count - 1 ? s : s + String(repeating: " ", count: widths[i] - s.count)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    /// `connection list --json`: `{"format":"cdfsync-connections/1","connections":[...]}`.
    public static func listJSON(_ list: [SavedConnection]) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("format"); w.string("cdfsync-connections/1")
        w.key("connections")
        w.beginArray()
        for c in list {
            w.beginObject()
            w.key("name"); w.string(c.name)
            w.key("host"); w.string(c.host)
            w.key("warehouse_id"); w.string(c.warehouseID)
            w.key("catalog"); w.string(c.catalog)
            w.key("schema"); w.string(c.schema)
            w.key("auth"); w.string(c.auth.rawValue)
            w.key("client_id"); w.string(c.clientID)
            w.key("secret")
            w.beginObject()
            switch c.secret {
            case .environment(let v):
                w.key("source"); w.string("env")
                w.key("variable"); w.string(v)
            case .encrypted:
                w.key("source"); w.string("encrypted")
            }
            w.endObject()
            w.key("ca_bundle"); w.string(c.caBundle)
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return w.bytes
    }

    // MARK: storage format

    struct StoredRecord: Codable {
        var version: Int
        var connection: SavedConnection
    }

    static func decode(_ bytes: [UInt8]) throws -> SavedConnection {
        do {
            let r = try JSONDecoder().decode(StoredRecord.self, from: Data(bytes))
            guard r.version == 1 else {
                throw DatabricksError(.configuration, "a saved connection has record version \(r.version)",
                    remedy: "It was written by a newer cdfsync; upgrade cdfsync.")
            }
            return r.connection
        } catch let e as DatabricksError {
            throw e
        } catch {
            throw DatabricksError(.configuration, "a saved connection record is damaged (\(error))",
                remedy: "Remove it with `cdfsync connection remove NAME` and add it again.")
        }
    }
}
