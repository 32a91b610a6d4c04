import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

@main
struct CDFSyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cdfsync",
        abstract: "Replicate a Databricks Delta change data feed into a deduplicated participant panel.",
        version: "0.1.0",
        subcommands: [
            Sync.self, Replay.self, Refresh.self, Schedule.self, Serve.self, PipelineCommand.self, Status.self, Runs.self,
            Panel.self, Connection.self, Discover.self, Conflicts.self, InvitationsCommand.self,
        ]
    )

    /// Parses twice: first without the value checks, then with them.
    ///
    /// swift-argument-parser runs `validate()` of every option group and command as it decodes it, before it looks
    /// for arguments no declaration took: `sync --bogus` was answered by a check of the other options ("give a
    /// pipeline file or --table"), and `sync --no-such-flag x --table …` by "…not both". The first parse, with
    /// ``ArgumentChecks/enabled`` off, finds what the parser itself refuses (an unknown option, a missing value, a
    /// value of the wrong type) and reports it as such; the second one runs the checks and the command. Both exit
    /// 64 on a usage error (``ExitStatus``).
    static func main() {
        ArgumentChecks.enabled = false
        do {
            _ = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        ArgumentChecks.enabled = true
        do {
            var command = try parseAsRoot()
            try LogSetup.bootstrap(for: command, environment: ProcessInfo.processInfo.environment)
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// Whether `validate()` of the commands and option groups checks values; every `validate()` starts with
/// `guard ArgumentChecks.enabled else { return }` (see ``CDFSyncCommand/main()``).
enum ArgumentChecks {
    /// Written only by `main()` on the main thread before anything else runs, and read by the parse that follows
    /// on the same thread.
    nonisolated(unsafe) static var enabled = true
}

/// How to reach the warehouse: flags, else the environment variables the Databricks tools use, else a profile of
/// `~/.databrickscfg` (``DatabricksUnifiedConfig``: the Databricks SDKs' order).
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Use a saved connection (see `cdfsync connection list`); other flags override its catalog, schema and CA bundle.")
    var connection: String?

    @Option(help: "Directory of saved connections and the secret key (env CDFSYNC_CONFIG_DIR, default ~/.config/cdfsync).")
    var configDir: String?

    @Option(help: ArgumentHelp(
        "Profile of ~/.databrickscfg to read host, token or client_id/client_secret, and warehouse_id from (env DATABRICKS_CONFIG_PROFILE).",
        discussion: "Flags win over the environment, which wins over the profile, as in the Databricks SDKs. "
            + "DATABRICKS_CONFIG_FILE names another file. Without a profile, the file's DEFAULT profile is read "
            + "when neither flags nor environment give a host or a credential."))
    var profile: String?

    @Option(help: "Workspace URL or host (env DATABRICKS_HOST).")
    var host: String?

    @Option(help: "SQL warehouse id (env DATABRICKS_WAREHOUSE_ID).")
    var warehouseId: String?

    @Option(help: "Warehouse HTTP path, /sql/1.0/warehouses/<id> (env DATABRICKS_HTTP_PATH).")
    var httpPath: String?

    @Option(help: "Name of an environment variable holding the personal access token (default DATABRICKS_TOKEN).")
    var tokenEnv: String = "DATABRICKS_TOKEN"

    @Option(help: "Default catalog for the statements.")
    var catalog: String?

    @Option(help: "Default schema for the statements.")
    var schema: String?

    @Option(help: "PEM file of CA certificates to trust (corporate TLS proxies).")
    var caBundle: String?

    @Option(help: "Seconds to wait for a connection.")
    var connectTimeout: Double = 15

    @Option(help: "Seconds a single HTTP request may take.")
    var requestTimeout: Double = 300

    func validate() throws {
        guard ArgumentChecks.enabled else { return }
        for (name, value) in [("--connect-timeout", connectTimeout), ("--request-timeout", requestTimeout)]
        where !(value > 0 && value.isFinite) {
            throw ValidationError("\(name) must be a positive number of seconds; got \(value).")
        }
    }

    /// The connection these options describe. `authentication`, when given, replaces the credential the flags,
    /// environment and profile would give (a pipeline's own `client_id_env` / `client_secret_env`).
    func settings(authentication override: Authentication? = nil) throws -> ConnectionSettings {
        let env = ProcessInfo.processInfo.environment
        if let name = connection {
            guard profile == nil else {
                throw DatabricksError(.configuration, "a saved connection and --profile were both given",
                    remedy: "Use either the saved connection '\(name)' or the ~/.databrickscfg profile '\(profile!)'.")
            }
            return try savedSettings(name)
        }
        let config = try DatabricksUnifiedConfig.resolve(
            .init(profile: profile, host: host, warehouseID: warehouseId, httpPath: httpPath, tokenVariable: tokenEnv),
            environment: env)
        let from = config.profile.map { " (nor in profile \($0.name) of \($0.file))" } ?? ""
        guard let host = config.host?.value else {
            throw DatabricksError(.configuration, "no workspace host given\(from)",
                remedy: "Pass --host, set DATABRICKS_HOST (e.g. https://dbc-1234.cloud.databricks.com), or name a "
                    + "~/.databrickscfg profile with --profile.")
        }
        let warehouse: String
        if let id = config.warehouseID?.value {
            warehouse = id
        } else if let path = config.httpPath?.value {
            warehouse = try ConnectionSettings.warehouseID(fromHTTPPath: path)
        } else {
            throw DatabricksError(.configuration, "no SQL warehouse given\(from)",
                remedy: "Pass --warehouse-id <id> or --http-path /sql/1.0/warehouses/<id> (or set warehouse_id in the "
                    + "profile).")
        }
        let auth = try override ?? config.authentication(tokenVariable: tokenEnv)
        var transport = TransportOptions()
        transport.caBundlePath = caBundle
        transport.connectTimeout = connectTimeout
        transport.requestTimeout = requestTimeout
        return try ConnectionSettings(host: host, warehouseID: warehouse, authentication: auth, catalog: catalog,
            schema: schema, transport: transport)
    }
}

struct StateOptions: ParsableArguments {
    @Option(help: "Directory of the LMDB state (panel, index, checkpoints, runs).")
    var stateDir: String = ".cdfsync/state"

    @Option(
        help: ArgumentHelp(
            "Largest size the state store may grow to: address space reserved, not disk (default 64G; e.g. 512G, 2T).",
            discussion: """
                A 1,000,000-row panel takes about 0.4 GB. Raise it for panels beyond ~150 million rows or when a \
                run stops with "LMDB map ... is full"; lower it where the address space is limited (ulimit -v). \
                It may change from run to run; a size below what the store already holds opens it at its current \
                size, with no room to grow.
                """, valueName: "size"),
        transform: StoreSize.parse)
    var maxStoreSize: StoreSize = .default

    /// Opens the panel store in `directory` (default `--state-dir`) with `--max-store-size`.
    /// A writer (the default) holds the state directory's writer lock while the store is open; a second writing
    /// process is refused naming the first.
    func openStore(at directory: String? = nil, durable: Bool = true, access: PanelStore.Access = .writer) throws -> PanelStore {
        try PanelStore(directory: directory ?? stateDir, durable: durable, mapSize: maxStoreSize.bytes, access: access)
    }

    /// Whether a sync has created the state store in `directory`.
    static func hasStore(in directory: String) -> Bool { FileManager.default.fileExists(atPath: directory + "/data.mdb") }

    /// ``openStore(at:durable:)`` for commands that only read (runs, panel export): a directory no sync has
    /// written is an error naming it, not an empty store created there (a mistyped --state-dir listed nothing and
    /// left a store behind). They take no writer lock: they run beside a sync.
    func openExistingStore(at directory: String? = nil) throws -> PanelStore {
        let dir = directory ?? stateDir
        guard Self.hasStore(in: dir) else {
            throw SyncError("no cdfsync state in \(FilePaths.shown(dir)): no sync has run with this state directory",
                remedy: "Pass the --state-dir (or the pipeline's state_dir) your syncs use; the default is .cdfsync/state "
                    + "under the directory the sync ran in.")
        }
        return try openStore(at: dir, access: .reader)
    }
}

/// `--max-store-size`: bytes, or a number with K, M, G or T (powers of 1024); parsed by `parse`, whose errors
/// say what a size looks like.
struct StoreSize: CustomStringConvertible {
    static let `default` = StoreSize(bytes: 1 << 36)
    static let range: ClosedRange<Int> = (16 << 20)...(64 << 40)

    let bytes: Int

    var description: String {
        for (suffix, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] where bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return "\(bytes)"
    }

    static func parse(_ text: String) throws -> StoreSize {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let shifts: [Character: Int] = ["K": 10, "M": 20, "G": 30, "T": 40]
        var digits = Substring(t)
        var shift = 0
        if let last = t.last, let s = shifts[last] {
            shift = s
            digits = t.dropLast()
        } else if t.hasSuffix("B"), let unit = t.dropLast().last, let s = shifts[unit] {
            shift = s
            digits = t.dropLast(2)
        }
        guard let n = Int(digits), n > 0, n <= Int.max >> shift else {
            throw ValidationError(
                "'\(text)' is not a size; give bytes or a number with K, M, G or T (powers of 1024), "
                    + "e.g. 64G or 512G")
        }
        let size = StoreSize(bytes: n << shift)
        guard range.contains(size.bytes) else {
            throw ValidationError(
                "\(text) is outside \(StoreSize(bytes: range.lowerBound))…"
                    + "\(StoreSize(bytes: range.upperBound)); the default is \(StoreSize.default)")
        }
        return size
    }
}

/// Runs `body`, printing any error as one clear line on stderr and exiting non-zero: 1, or 130 / 143 when SIGINT /
/// SIGTERM stopped it (``ExitStatus``).
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ValidationError {
        throw e
    } catch let e as SyncFailure {
        FileHandle.standardError.write(Data("error: \(e.underlying)\n".utf8))
        if let hint = storeSizeHint(e.underlying) { FileHandle.standardError.write(Data("  \(hint)\n".utf8)) }
        FileHandle.standardError.write(Data("  \(e.summary.failureState) (run \(e.summary.runID) recorded)\n".utf8))
        if let signal = Interrupts.signalName { FileHandle.standardError.write(Data("  stopped by \(signal)\n".utf8)) }
        throw ExitStatus.failure
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        if let hint = storeSizeHint(error) { FileHandle.standardError.write(Data("  \(hint)\n".utf8)) }
        if let signal = Interrupts.signalName { FileHandle.standardError.write(Data("  stopped by \(signal)\n".utf8)) }
        throw ExitStatus.failure
    }
}

/// What to do, in the CLI's terms, about a state store that is full or whose size the address space cannot hold.
func storeSizeHint(_ error: any Error) -> String? {
    guard let e = error as? StorageError else { return nil }
    if e.code == .mapFull {
        return "the state store is at its --max-store-size (default \(StoreSize.default)): rerun with a larger one, "
            + "e.g. --max-store-size 256G; the run's applied batches are kept and it resumes from its checkpoint"
    }
    if let cause = e.underlying as? SystemErrno, cause.code == ENOMEM {
        return "lower --max-store-size (default \(StoreSize.default)) to what this process's address space allows "
            + "(ulimit -v), or raise that limit"
    }
    return nil
}
