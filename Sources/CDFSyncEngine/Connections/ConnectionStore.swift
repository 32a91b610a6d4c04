import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation

/// Saved connections in an LMDB environment under the config directory (`<config-dir>/connections/`).
///
/// Three databases: `connections` (name → JSON of ``SavedConnection``, never a secret), `secrets`
/// (name → AES-256-GCM sealed secret, see ``SecretCipher``) and `removed` (name → when it was removed, until a
/// connection of that name is added again: pipelines naming it are skipped with ``ConnectionRemoved``). A
/// connection and its secret are written and removed in one transaction.
///
/// - Important: open one store per config directory per process (LMDB's rule).
public final class ConnectionStore: Sendable {
    /// The config directory.
    public let directory: String
    let environment: [String: String]
    let env: LMDBEnvironment
    let connections: Database
    let secrets: Database
    let removed: Database

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
        let dbs = try env.openDatabases(["connections", "secrets", "removed"])
        connections = dbs[0]
        secrets = dbs[1]
        removed = dbs[2]
    }

    /// Whether a connection store exists in config directory `directory` (opening one creates it).
    public static func exists(directory: String) -> Bool {
        FileManager.default.fileExists(atPath: environmentDirectory(directory) + "/data.mdb")
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
            _ = try txn.delete(removed, key: key)
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
            if let when = try removal(name) { throw ConnectionRemoved(name: name, removedAt: when) }
            let known = (try? list().map(\.name)) ?? []
            throw DatabricksError(.configuration, "no saved connection named '\(name)'",
                remedy: known.isEmpty
                    ? "Add one with `cdfsync connection add \(name) --host ... --warehouse-id ...`."
                    : "Known connections: \(known.joined(separator: ", ")). Add one with `cdfsync connection add`.")
        }
        return try Self.decode(bytes)
    }

    /// Removes a connection and its stored secret in one transaction, and remembers when (`removed`): a
    /// pipeline that names it is then told it was removed (``ConnectionRemoved``), until a connection of that
    /// name is added again.
    /// - Throws: `DatabricksError` `.configuration` when there is no such connection.
    public func remove(_ name: String, at date: Date = Date()) throws {
        let existed = try env.write { txn -> Bool in
            let key = Array(name.utf8)
            let had = try txn.delete(connections, key: key)
            _ = try txn.delete(secrets, key: key)
            if had { try txn.put(removed, key: key, value: Array(ISO8601DateFormatter().string(from: date).utf8)) }
            return had
        }
        guard existed else {
            throw DatabricksError(.configuration, "no saved connection named '\(name)'",
                remedy: "See `cdfsync connection list` for the saved names.")
        }
    }

    /// When connection `name` was removed (UTC, ISO 8601), or nil when it was not (or was added again since).
    public func removal(_ name: String) throws -> String? {
        try env.read { try $0.get(removed, key: Array(name.utf8)) }.map { String(decoding: $0, as: UTF8.self) }
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
    /// (never a secret value); with `usage`, how many pipelines use each, and the `removed` connections that
    /// pipelines still name.
    public static func renderList(
        _ list: [SavedConnection], usage: [String: [ConnectionUser]]? = nil,
        removed: [(name: String, removedAt: String?)] = []
    ) -> String {
        var out: [String] = []
        if list.isEmpty {
            out.append("no saved connections (add one with `cdfsync connection add`)")
        } else {
            var header = ["NAME", "HOST", "WAREHOUSE", "AUTH", "SECRET"]
            if usage != nil { header.insert("PIPELINES", at: 1) }
            let rows = list.map { c in
                var row = [c.name, c.host, c.warehouseID, c.auth == .oauthM2M ? "oauth-m2m (\(c.clientID ?? ""))" : "pat",
                     c.secret.description]
                if let usage { row.insert("\(usage[c.name]?.count ?? 0)", at: 1) }
                return row
            }
            let widths = (0..<header.count).map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
            func line(_ cells: [String]) -> String {
                cells.enumerated().map { i, s in
                    i == cells.count - 1 ? s : s + String(repeating: " ", count: widths[i] - s.count)
                }.joined(separator: "  ")
            }
            out += [line(header)] + rows.map(line)
        }
        for r in removed {
            let users = usage?[r.name] ?? []
            out.append("removed connection \(r.name)" + (r.removedAt.map { " (\($0))" } ?? " (not saved here)")
                + " is still named by \(users.count) pipeline(s), which do not run: "
                + users.map(\.description).joined(separator: ", "))
        }
        return out.joined(separator: "\n")
    }

    /// `connection list --json`: `{"format":"cdfsync-connections/1","connections":[...]}`; with `usage`, each
    /// connection's `pipeline_count` and `pipelines` (`name`, `state_dir`), and `removed` (connections pipelines
    /// still name: `name`, `removed_at`, `pipelines`).
    public static func listJSON(
        _ list: [SavedConnection], usage: [String: [ConnectionUser]]? = nil,
        removed: [(name: String, removedAt: String?)] = []
    ) -> [UInt8] {
        func users(_ name: String, _ w: inout JSONWriter) {
            let u = usage?[name] ?? []
            w.key("pipeline_count"); w.int(Int64(u.count))
            w.key("pipelines")
            w.beginArray()
            for p in u {
                w.beginObject()
                w.key("name"); w.string(p.pipeline)
                w.key("state_dir"); w.string(p.stateDir)
                w.endObject()
            }
            w.endArray()
        }
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
            if usage != nil { users(c.name, &w) }
            w.endObject()
        }
        w.endArray()
        if usage != nil {
            w.key("removed")
            w.beginArray()
            for r in removed {
                w.beginObject()
                w.key("name"); w.string(r.name)
                w.key("removed_at"); w.string(r.removedAt)
                users(r.name, &w)
                w.endObject()
            }
            w.endArray()
        }
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

/// A pipeline names a saved connection that `cdfsync connection remove` removed: the pipeline does not run
/// (`sync` fails with this, `schedule` skips it) until a connection of that name is added again or the pipeline
/// names another one.
public struct ConnectionRemoved: Error, Sendable, CustomStringConvertible {
    public var name: String
    /// When it was removed (ISO 8601, UTC).
    public var removedAt: String
    /// The pipeline that names it, when known.
    public var pipeline: String?

    public init(name: String, removedAt: String, pipeline: String? = nil) {
        self.name = name
        self.removedAt = removedAt
        self.pipeline = pipeline
    }

    public var description: String {
        (pipeline.map { "pipeline \($0) skipped: " } ?? "") + "connection \(name) was removed (\(removedAt)); no saved "
            + "connection named '\(name)' any more — add it again (`cdfsync connection add \(name) ...`) or point the "
            + "pipeline's `connection` at another one"
    }
}

/// A pipeline that uses a saved connection: its name and state directory (as its syncs recorded it).
public struct ConnectionUser: Sendable, CustomStringConvertible {
    public var pipeline: String
    public var stateDir: String

    public init(pipeline: String, stateDir: String) {
        self.pipeline = pipeline
        self.stateDir = stateDir
    }

    public var description: String { "\(pipeline) (\(FilePaths.shown(stateDir)))" }
}
