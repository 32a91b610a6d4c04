import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

extension ConnectionOptions {
    /// Settings of the saved connection `name`, with --catalog, --schema, --ca-bundle and the timeouts applied on top.
    func savedSettings(_ name: String) throws -> ConnectionSettings {
        let env = ProcessInfo.processInfo.environment
        guard host == nil, warehouseId == nil, httpPath == nil else {
            throw DatabricksError(.configuration, "a saved connection and --host/--warehouse-id/--http-path were both given",
                remedy: "Use either the saved connection '\(name)' or the flags; to change the saved one, run `cdfsync connection add \(name) ... --replace`.")
        }
        let store = try ConnectionStore(directory: ConfigDirectory.resolve(configDir, environment: env), environment: env)
        var transport = TransportOptions()
        transport.caBundlePath = caBundle
        transport.connectTimeout = connectTimeout
        transport.requestTimeout = requestTimeout
        var settings = try store.resolve(name, transport: transport)
        if let catalog { settings.catalog = catalog }
        if let schema { settings.schema = schema }
        return settings
    }

    /// These options with a saved connection name given as a positional argument.
    func naming(_ name: String?) -> ConnectionOptions {
        var copy = self
        if let name { copy.connection = name }
        return copy
    }
}

/// `--config-dir` for the commands that manage saved connections.
struct ConfigDirOptions: ParsableArguments {
    @Option(help: "Directory of saved connections and the secret key (env CDFSYNC_CONFIG_DIR, default ~/.config/cdfsync).")
    var configDir: String?

    func store() throws -> ConnectionStore {
        let env = ProcessInfo.processInfo.environment
        return try ConnectionStore(directory: ConfigDirectory.resolve(configDir, environment: env), environment: env)
    }
}

/// `--state-dir` (repeatable) for the commands that report which pipelines use a connection.
struct ConnectionUsageOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"),
        help: "A state directory whose pipelines to count (repeatable; default .cdfsync/state).")
    var stateDirs: [String] = []

    /// Pipelines per saved-connection name, from every given state directory that holds a store (read-only; a
    /// directory without one contributes nothing).
    func pipelines() throws -> [String: [ConnectionUser]] {
        var out: [String: [ConnectionUser]] = [:]
        var seen = Set<String>()
        for dir in stateDirs.isEmpty ? [".cdfsync/state"] : stateDirs where seen.insert(dir).inserted {
            guard StateOptions.hasStore(in: dir) else { continue }
            let store = try PanelStore(directory: dir, access: .reader)
            for (pipeline, connection) in try store.pipelineConnections() {
                out[connection, default: []].append(ConnectionUser(pipeline: pipeline, stateDir: dir))
            }
        }
        return out
    }
}

extension CDFSyncCommand {
    struct Connection: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "connection",
            abstract: "Save, list, test and remove named warehouse connections.",
            subcommands: [Add.self, List.self, Test.self, Remove.self])
    }
}

extension CDFSyncCommand.Connection {
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Save a connection. Secrets are referenced by environment variable or stored encrypted (AES-256-GCM).")

        @Argument(help: "Name of the connection (letters, digits, '.', '_', '-').")
        var name: String

        @Option(help: "Workspace URL or host.")
        var host: String

        @Option(help: "SQL warehouse id.")
        var warehouseId: String?

        @Option(help: "Warehouse HTTP path, /sql/1.0/warehouses/<id>.")
        var httpPath: String?

        @Option(help: "Default catalog.")
        var catalog: String?

        @Option(help: "Default schema.")
        var schema: String?

        @Option(help: "Authentication: pat or oauth-m2m.")
        var auth: String = "pat"

        @Option(help: "Service principal client id (oauth-m2m).")
        var clientId: String?

        @Option(help: "Environment variable holding the personal access token (stored: the name only).")
        var tokenEnv: String?

        @Option(help: "Environment variable holding the token or OAuth client secret (stored: the name only).")
        var secretEnv: String?

        @Flag(help: "Read the token or client secret from standard input and store it encrypted.")
        var secretStdin = false

        @Option(help: "PEM file of CA certificates to trust.")
        var caBundle: String?

        @Flag(help: "Overwrite a connection of the same name.")
        var replace = false

        @OptionGroup var config: ConfigDirOptions

        func validate() throws {
            guard ArgumentChecks.enabled else { return }
            guard (warehouseId == nil) != (httpPath == nil) else {
                throw ValidationError("Pass exactly one of --warehouse-id and --http-path.")
            }
            guard [tokenEnv != nil, secretEnv != nil, secretStdin].filter({ $0 }).count <= 1 else {
                throw ValidationError("Pass at most one of --token-env, --secret-env and --secret-stdin.")
            }
            guard SavedConnection.AuthKind(rawValue: auth) != nil else {
                throw ValidationError("--auth must be pat or oauth-m2m.")
            }
            if auth == SavedConnection.AuthKind.oauthM2M.rawValue, clientId == nil {
                throw ValidationError("--auth oauth-m2m needs --client-id.")
            }
        }

        func run() throws {
            try reportingErrors {
                let kind = SavedConnection.AuthKind(rawValue: auth)!
                let warehouse = try warehouseId ?? ConnectionSettings.warehouseID(fromHTTPPath: httpPath!)
                let source: SavedConnection.SecretSource
                var secret: Secret?
                if secretStdin {
                    let data = FileHandle.standardInput.readDataToEndOfFile()
                    let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    guard !text.isEmpty else {
                        throw DatabricksError(.configuration, "standard input was empty",
                            remedy: "Pipe the secret in, e.g. `printenv DATABRICKS_TOKEN | cdfsync connection add ... --secret-stdin`.")
                    }
                    source = .encrypted
                    secret = Secret(text)
                } else {
                    source = .environment(
                        tokenEnv ?? secretEnv ?? (kind == .pat ? "DATABRICKS_TOKEN" : "DATABRICKS_CLIENT_SECRET"))
                }
                var bundle = caBundle
                if let path = caBundle {
                    guard FileManager.default.isReadableFile(atPath: path) else {
                        throw DatabricksError(.configuration,
                            "the CA bundle \(FilePaths.shown(path)) is not a readable file",
                            remedy: "Pass the path of a PEM file with the CA certificates to trust.")
                    }
                    // Stored absolute: the connection is used from other working directories.
                    bundle = URL(fileURLWithPath: path).standardizedFileURL.path
                }
                let connection = try SavedConnection(
                    name: name, host: host, warehouseID: warehouse, catalog: catalog, schema: schema, auth: kind,
                    clientID: clientId, secret: source, caBundle: bundle)
                let store = try config.store()
                try store.add(connection, secret: secret, replace: replace)
                print("saved connection '\(name)': \(connection.host), warehouse \(warehouse), \(kind.rawValue), secret \(source)")
                print("check it with: cdfsync connection test \(name)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List saved connections (name, host, warehouse, auth kind, secret source; never a secret).",
            discussion: """
                PIPELINES counts the pipelines that use each connection, as their syncs recorded it in the state \
                directories given with --state-dir (repeatable; default .cdfsync/state). A removed connection \
                that pipelines still name is listed after the others.
                """)

        @Flag(help: "Print JSON.")
        var json = false

        @OptionGroup var config: ConfigDirOptions
        @OptionGroup var usage: ConnectionUsageOptions

        func run() throws {
            try reportingErrors {
                let store = try config.store()
                let list = try store.list()
                let users = try usage.pipelines()
                let removed = try users.keys.filter { name in !list.contains { $0.name == name } }.sorted()
                    .map { (name: $0, removedAt: try store.removal($0)) }
                if json {
                    print(String(decoding: ConnectionStore.listJSON(list, usage: users, removed: removed), as: UTF8.self))
                } else {
                    print(ConnectionStore.renderList(list, usage: users, removed: removed))
                }
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a saved connection and its stored secret.",
            discussion: """
                Pipelines that use the connection (as recorded in the state directories given with --state-dir, \
                repeatable; default .cdfsync/state) are listed, and the connection is kept unless --force is given. \
                After a forced removal those pipelines stop: sync and schedule skip them ("connection NAME was \
                removed") and status says so, until a connection of that name is added again.
                """)

        @Argument(help: "Name of the connection.")
        var name: String

        @Flag(help: "Remove it even though pipelines use it (they stop running).")
        var force = false

        @OptionGroup var config: ConfigDirOptions
        @OptionGroup var usage: ConnectionUsageOptions

        func run() throws {
            try reportingErrors {
                let store = try config.store()
                _ = try store.get(name)
                let users = try usage.pipelines()[name] ?? []
                let named = users.map(\.description).joined(separator: ", ")
                if !users.isEmpty && !force {
                    FileHandle.standardError.write(Data("""
                        error: connection '\(name)' is used by \(users.count) pipeline(s): \(named)
                          nothing was removed; point those pipelines at another connection first, or pass --force \
                        to remove it anyway (they then stop running: sync and schedule skip them)

                        """.utf8))
                    throw ExitCode(1)
                }
                try store.remove(name)
                print("removed connection '\(name)'")
                if !users.isEmpty {
                    print("\(users.count) pipeline(s) used it and now stop (connection \(name) was removed): \(named)")
                }
            }
        }
    }

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a connection step by step: host, credential, warehouse, SELECT 1, catalogs.",
            discussion: "Give a saved connection NAME, or the usual --host/--warehouse-id flags and environment.")

        @Argument(help: "Saved connection to test (default: the flags and environment).")
        var name: String?

        @OptionGroup var connection: ConnectionOptions

        @Flag(inversion: .prefixedNo, help: "Start a stopped warehouse and wait for it.")
        var startWarehouse = true

        @Option(help: "Seconds to wait for a starting warehouse.")
        var startTimeout: Double = 1200

        @Flag(help: "Print the report (passed, checks, failure with its remedy) as one JSON object.")
        var json = false

        @OptionGroup(title: "Logging") var logging: LoggingOptions

        func run() throws {
            let report: ConnectionTestReport = try reportingErrors {
                var tester = ConnectionTester(settings: try connection.naming(name).settings())
                tester.startWarehouse = startWarehouse
                tester.waiter.timeout = startTimeout
                tester.onCheck = { check in if !json { print(check.render()) } }
                return tester.run()
            }
            if json {
                JSONOutput.emit(report.json())
                if !report.passed { throw ExitStatus.failure }
                return
            }
            if let f = report.failure {
                print("")
                print("  \(f.category): \(f.message)")
                print("  remedy: \(f.remedy)")
                throw ExitCode(1)
            }
            print("all checks passed")
        }
    }
}
