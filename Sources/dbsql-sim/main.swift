import ArgumentParser
import CDFSyncCore
import Foundation
import Logging
import ServiceLifecycle
import WarehouseSimulator

#if canImport(Glibc)
import Glibc
#endif

/// `dbsql-sim`: serves a `cdfsync-sim/1` workspace over the Databricks SQL HTTP API on loopback.
struct DBSQLSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dbsql-sim",
        abstract: "Databricks SQL warehouse simulator (Statement Execution API, warehouses, OAuth M2M).",
        discussion: """
            Prints exactly one line on stdout once it listens: `listening on http://HOST:PORT`.
            Logs go to stderr. SIGINT or SIGTERM stops it gracefully: no new connections, requests in flight
            answered, then exit 0.
            """)

    @Option(name: .long, help: "A cdfsync-sim/1 workspace document.")
    var workspace: String?

    @Option(name: .long, help: "Port to listen on (0 = any free port).")
    var port: Int = 0

    @Option(name: .long, help: "IPv4 address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "Admin token for /_sim/ (default: $DBSQL_SIM_ADMIN_TOKEN, else sim-admin).")
    var adminToken: String?

    @Option(name: .long, help: "Rows per INLINE chunk.")
    var rowsPerChunk: Int = 10_000

    @Option(name: .long, help: "Rows per EXTERNAL_LINKS chunk.")
    var rowsPerExternalChunk: Int = 100_000

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Add a synthetic participant table NAME:ROWS[:SEED[:UPDATE_VERSIONS]] (repeatable).",
            valueName: "name:rows[:seed[:versions]]"))
    var synthetic: [String] = []

    @Option(name: .long, help: "Fraction of rows each generated update version touches (for --synthetic).")
    var updateFraction: Double = 0.01

    @Option(name: .long, help: "Seconds a statement runs once its warehouse is up.")
    var executionDelay: Double = 0

    @Option(name: .long, help: "INLINE result cap in bytes (0 disables it).")
    var inlineByteLimit: Int = 26_214_400

    @Option(
        name: .long,
        help: "MiB of results, and of their rendered files, kept for the result cache (0 turns it off).")
    var resultCacheMb: Int = 1024

    @Option(name: .long, help: "Lifetime of external links in seconds.")
    var linkTtl: Double = 900

    @Option(name: .long, help: "Lifetime of OAuth access tokens in seconds.")
    var oauthTokenTtl: Double = 3600

    @Option(name: .long, help: "Seconds results stay fetchable after success.")
    var resultTtl: Double = 3600

    @Option(name: .long, help: "Seconds after which a running statement nobody polls is cancelled.")
    var abandonAfter: Double = 900

    @Option(name: .long, help: "HTTP status for an unknown warehouse_id: 404 (RESOURCE_DOES_NOT_EXIST) or 400.")
    var unknownWarehouseStatus: Int = 404

    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Chunk links carry ?row_offset=N, and a later chunk requested without it is refused.",
            discussion: "A server with opaque next_chunk_internal_link values, for testing that clients follow them."))
    var requireChunkLinkQuery = false

    @Flag(name: .long, help: "Leave status.sql_state out of FAILED statements.")
    var noSqlState = false

    @Flag(name: .long, help: "Log one line per request to stderr (method, path, status, bytes, ms; never query strings or headers).")
    var verbose = false

    func validate() throws {
        guard workspace != nil || !synthetic.isEmpty else {
            throw ValidationError("give --workspace FILE, or at least one --synthetic NAME:ROWS")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be within 0...65535") }
        guard rowsPerChunk > 0, rowsPerExternalChunk > 0 else { throw ValidationError("chunk sizes must be positive") }
        guard unknownWarehouseStatus == 404 || unknownWarehouseStatus == 400 else {
            throw ValidationError("--unknown-warehouse-status must be 404 or 400")
        }
    }

    /// Loads the workspace and serves it until SIGINT or SIGTERM, then stops gracefully.
    func run() throws {
        var ws: Workspace
        if let path = workspace {
            ws = try Workspace.load(path: path)
        } else {
            ws = Workspace(
                warehouses: [Warehouse(id: "8a1c2f3d4e5b6a70", name: "Simulated Warehouse", state: "RUNNING")],
                principals: [
                    Principal(
                        name: "sync-bot", tokens: ["dapi-demo-token"],
                        oauth: .init(clientID: "6f2d0a8e-sim-client", clientSecret: "dose-secret"),
                        warehouses: ["8a1c2f3d4e5b6a70": "CAN_USE"], grants: [])
                ])
        }
        for spec in synthetic {
            let parts = spec.split(separator: ":").map(String.init)
            guard parts.count >= 2, parts.count <= 4, let rows = Int(parts[1]), rows >= 0 else {
                throw ValidationError("--synthetic expects NAME:ROWS[:SEED[:UPDATE_VERSIONS]], got \(spec)")
            }
            let seed = parts.count >= 3 ? UInt64(parts[2]) : 42
            let versions = parts.count == 4 ? Int(parts[3]) : 0
            guard let seed, let versions else { throw ValidationError("--synthetic: SEED and UPDATE_VERSIONS must be integers") }
            ws.tables.append(
                Table(
                    name: parts[0], columns: [],
                    synthetic: SyntheticSpec(seed: seed, rows: rows, updateFraction: updateFraction, updateVersions: versions)))
            if workspace == nil {
                // The default principal may read what it was given.
                let catalog = parts[0].split(separator: ".").first.map(String.init) ?? parts[0]
                ws.principals[0].grants.append(.init(on: catalog, privileges: ["USE CATALOG", "USE SCHEMA", "SELECT"]))
            }
        }
        let token = adminToken ?? ProcessInfo.processInfo.environment["DBSQL_SIM_ADMIN_TOKEN"] ?? "sim-admin"
        var config = Simulator.Configuration(
            rowsPerChunk: rowsPerChunk, rowsPerExternalChunk: rowsPerExternalChunk, adminToken: token,
            includeSQLState: !noSqlState, executionDelay: executionDelay,
            inlineByteLimit: inlineByteLimit > 0 ? inlineByteLimit : nil, linkTTL: linkTtl, resultTTL: resultTtl,
            oauthTokenTTL: oauthTokenTtl, unknownWarehouseStatus: unknownWarehouseStatus)
        config.abandonAfter = abandonAfter
        config.requireChunkLinkQuery = requireChunkLinkQuery
        guard resultCacheMb >= 0 else { throw ValidationError("--result-cache-mb must be 0 or more") }
        config.resultCacheBytes = resultCacheMb << 20
        if verbose {
            config.requestLog = { line in FileHandle.standardError.write(Data("dbsql-sim: \(line)\n".utf8)) }
        }
        let sim = try Simulator(workspace: ws, configuration: config)
        let summary =
            "dbsql-sim: \(ws.tables.count) table(s), \(ws.warehouses.count) warehouse(s), \(ws.principals.count) principal(s)\n"
        let host = host
        let server = sim.service(host: host, port: port) { bound in
            FileHandle.standardError.write(Data(summary.utf8))
            FileHandle.standardOutput.write(Data("listening on http://\(host):\(bound)\n".utf8))
        }
        let group = ServiceGroup(
            configuration: .init(services: [server], logger: Logger(label: "dbsql-sim", factory: { _ in SwiftLogNoOpLogHandler() })))
        let finished = ResultLatch<Void>()
        Task {
            do {
                try await group.run()
            } catch {
                DBSQLSim.exit(withError: SimulatorError("cannot serve on \(host):\(port): \(error)"))
            }
            finished.succeed()
        }
        // SIGINT/SIGTERM are blocked since process start (see the bottom of this file): this thread collects them and
        // shuts the service group down gracefully (no new connections, requests in flight answered).
        var stopSignals = DBSQLSim.stopSignals()
        var received: Int32 = 0
        while sigwait(&stopSignals, &received) != 0 {}
        Task { await group.triggerGracefulShutdown() }
        try? finished.wait()
        FileHandle.standardError.write(Data("dbsql-sim: stopped (signal \(received))\n".utf8))
    }
}

extension DBSQLSim {
    static func stopSignals() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        return set
    }
}

// Block SIGINT/SIGTERM before any other thread exists (threads inherit the mask): a signal sent at any
// moment, even right after the port is announced, stays pending until run() collects it with sigwait,
// so it is neither lost nor fatal.
var blockedAtStart = DBSQLSim.stopSignals()
pthread_sigmask(SIG_BLOCK, &blockedAtStart, nil)
DBSQLSim.main()
