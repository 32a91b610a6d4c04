import CDFSyncCore
import Foundation
import Synchronization

/// The Databricks SQL warehouse simulator: a workspace held in memory behind the Statement Execution
/// API, the SQL Warehouses API, OAuth M2M and an admin interface under `/_sim/`.
///
/// ```swift
/// let sim = try Simulator(workspace: Workspace.load(path: "fixtures/demo-workspace.json"))
/// let port = try sim.start(host: "127.0.0.1", port: 0)
/// defer { sim.stop() }
/// ```
public final class Simulator: Sendable {
    /// Tunables. Defaults follow Databricks where it documents a value.
    public struct Configuration: Sendable {
        /// Rows per chunk for INLINE results.
        public var rowsPerChunk: Int
        /// Rows per chunk (one link each) for EXTERNAL_LINKS results.
        public var rowsPerExternalChunk: Int
        /// Bearer token of the admin interface.
        public var adminToken: String
        /// Whether FAILED statements carry `status.sql_state` (Databricks documents it; recordings lack it).
        public var includeSQLState: Bool
        /// Seconds a statement runs once its warehouse is up.
        public var executionDelay: Double
        /// INLINE result cap in bytes; nil disables it.
        public var inlineByteLimit: Int?
        /// Lifetime of external links.
        public var linkTTL: Double
        /// How long results stay fetchable after success.
        public var resultTTL: Double
        /// How long finished statements stay known.
        public var statementRetention: Double
        /// Lifetime of OAuth access tokens.
        public var oauthTokenTTL: Double
        /// HTTP status for an unknown `warehouse_id` (404 `RESOURCE_DOES_NOT_EXIST` by default, 400 otherwise).
        public var unknownWarehouseStatus: Int
        /// Seconds after which a running statement that nobody polls is cancelled (Databricks: 15 min).
        public var abandonAfter: Double = 900
        /// Bytes of rendered result files (EXTERNAL_LINKS chunks) kept for re-submitted queries answered from the
        /// result cache (``ResultCache``); 0 turns the result cache off (the files of the statement being
        /// fetched are still kept, up to 256 MiB).
        public var resultCacheBytes: Int = 1 << 30
        /// Internal chunk links (`next_chunk_internal_link`) carry `?row_offset=N`, as Databricks' may, and a request
        /// for a chunk after the first without it is refused (400): a server whose links are opaque, for clients
        /// that must follow them rather than build the path.
        public var requireChunkLinkQuery = false
        /// Receives one line per request (method, path without query, status, bytes, milliseconds).
        /// Never sees headers, query strings or bodies, so no token or signature reaches a log.
        public var requestLog: (@Sendable (String) -> Void)?

        public init(
            rowsPerChunk: Int = 10_000, rowsPerExternalChunk: Int = 100_000, adminToken: String = "sim-admin",
            includeSQLState: Bool = true, executionDelay: Double = 0, inlineByteLimit: Int? = 26_214_400,
            linkTTL: Double = 900, resultTTL: Double = 3600, statementRetention: Double = 43_200,
            oauthTokenTTL: Double = 3600, unknownWarehouseStatus: Int = 404
        ) {
            self.rowsPerChunk = max(1, rowsPerChunk)
            self.rowsPerExternalChunk = max(1, rowsPerExternalChunk)
            self.adminToken = adminToken
            self.includeSQLState = includeSQLState
            self.executionDelay = executionDelay
            self.inlineByteLimit = inlineByteLimit
            self.linkTTL = linkTTL
            self.resultTTL = resultTTL
            self.statementRetention = statementRetention
            self.oauthTokenTTL = oauthTokenTTL
            self.unknownWarehouseStatus = unknownWarehouseStatus
        }
    }

    public let configuration: Configuration
    public let clock: SimulatorClock
    let state: Mutex<SimState>
    /// The server `start` started, until `stop`.
    let serving = Mutex<Serving?>(nil)
    /// Signs external links; random per process.
    let linkSecret: UInt64
    let blobCache: Mutex<BlobCache>
    /// Databricks SQL's result cache (``ResultCache``).
    let resultCache: Mutex<ResultCache>
    /// Bodies accepted by the stand-in webhook receiver (`/_hook/`).
    let webhooks = WebhookLog()

    /// Creates a simulator over `workspace`. Nothing listens until `start`.
    public init(workspace: Workspace, configuration: Configuration = .init(), clock: SimulatorClock = SimulatorClock())
        throws
    {
        try workspace.validate()
        self.configuration = configuration
        self.clock = clock
        self.state = Mutex(try SimState(workspace: workspace, now: clock.now))
        blobCache = Mutex(BlobCache(limit: max(256 << 20, configuration.resultCacheBytes)))
        resultCache = Mutex(ResultCache(limit: configuration.resultCacheBytes))
        var rng = SystemRandomNumberGenerator()
        linkSecret = rng.next()
    }

    // MARK: in-process admin API (same as the /_sim/ endpoints)

    /// Appends a commit to a table; `commit.version` must be the latest version + 1.
    public func appendCommit(table: String, _ commit: Commit) throws {
        let name = try TableName(parsing: table)
        try state.withLock { s in
            guard var t = s.tables[name.key] else { throw SimulatorError("no table \(table)") }
            try t.append(commit)
            s.tables[name.key] = t
            s.dataGeneration += 1
        }
    }

    /// Appends a generated commit to a synthetic table; returns its version.
    @discardableResult
    public func appendSyntheticCommit(
        table: String, updateFraction: Double = 0.01, insertRows: Int = 0, deleteFraction: Double = 0,
        timestamp: String? = nil
    ) throws -> Int {
        let name = try TableName(parsing: table)
        let ts = try timestamp.map { try Timestamp.parseMillis($0) }
        return try state.withLock { s in
            guard var t = s.tables[name.key] else { throw SimulatorError("no table \(table)") }
            guard var syn = t.synthetic else { throw SimulatorError("table \(table) is not synthetic") }
            try syn.appendCommit(
                updateFraction: updateFraction, insertRows: insertRows, deleteFraction: deleteFraction,
                timestampMillis: ts)
            t.synthetic = syn
            t.versions = syn.versionInfos
            s.tables[name.key] = t
            s.dataGeneration += 1
            return t.latestVersion
        }
    }

    /// Adds a table (e.g. a synthetic one); the name must be new.
    public func addTable(_ table: Table) throws {
        try table.validate()
        let t = try TableState(table)
        try state.withLock { s in
            guard s.tables[t.name.key] == nil else { throw SimulatorError("table \(table.name) already exists") }
            s.tables[t.name.key] = t
            s.dataGeneration += 1
        }
    }

    /// Drops a table (`DROP TABLE`): its name is free again, and a table added under it later starts a history of
    /// its own at v0, as a re-created Delta table does.
    public func dropTable(_ table: String) throws {
        let name = try TableName(parsing: table)
        try state.withLock { s in
            guard s.tables.removeValue(forKey: name.key) != nil else { throw SimulatorError("no table \(table)") }
            s.dataGeneration += 1
        }
    }

    /// Adds a synthetic participant-panel table.
    public func addSyntheticTable(
        name: String, rows: Int, seed: UInt64 = 42, updateFraction: Double = 0.01, updateVersions: Int = 0
    ) throws {
        try addTable(
            Table(
                name: name, columns: SyntheticTable.columns,
                synthetic: SyntheticSpec(seed: seed, rows: rows, updateFraction: updateFraction, updateVersions: updateVersions)))
    }

    /// The latest version of a table, or nil when there is no such table.
    public func latestVersion(table: String) -> Int? {
        guard let name = try? TableName(parsing: table) else { return nil }
        return state.withLock { $0.tables[name.key]?.latestVersion }
    }

    /// Forces a warehouse state (`RUNNING`, `STOPPED`, `STARTING`, `STOPPING`).
    public func setWarehouseState(id: String, state newState: String) throws {
        let now = clock.now
        try state.withLock { s in
            guard var w = s.warehouses[id] else { throw SimulatorError("no warehouse \(id)") }
            try w.force(newState, now: now)
            s.warehouses[id] = w
        }
    }

    /// Installs a fault (see docs/simulator.md); returns its id.
    @discardableResult
    public func addFault(_ fault: Fault) -> Int {
        state.withLock { s in
            s.nextFaultID += 1
            var f = fault
            f.id = s.nextFaultID
            s.faults.append(f)
            return f.id
        }
    }

    /// Removes every fault.
    public func clearFaults() { state.withLock { $0.faults.removeAll() } }

    /// Vacuums a table (`VACUUM`): versions below `earliestRetainedVersion` can no longer be read (`VERSION AS OF`,
    /// `table_changes` from there), and `table_changes` over them fails with `errorClass` (nil: keep the table's).
    public func vacuum(table: String, earliestRetainedVersion: Int, errorClass: String? = nil) throws {
        let name = try TableName(parsing: table)
        if let errorClass, VacuumError.classes[errorClass] == nil {
            throw SimulatorError(
                "unknown vacuum error class \(errorClass); one of \(VacuumError.classes.keys.sorted())")
        }
        try state.withLock { s in
            guard var t = s.tables[name.key] else { throw SimulatorError("no table \(table)") }
            guard t.view == nil else { throw SimulatorError("\(table) is a view") }
            guard earliestRetainedVersion >= 0, earliestRetainedVersion <= t.latestVersion else {
                throw SimulatorError("earliest_retained_version must be within 0...\(t.latestVersion)")
            }
            t.earliestRetainedVersion = earliestRetainedVersion
            if let errorClass { t.vacuumErrorClass = errorClass }
            s.tables[name.key] = t
            s.dataGeneration += 1
        }
    }
}

/// Everything the simulator holds, guarded by one lock.
struct SimState: Sendable {
    var tables: [String: TableState] = [:]
    var principals: [Principal] = []
    var patIndex: [String: Int] = [:]
    var oauthTokens: [String: (principal: Int, expires: Double)] = [:]
    var revokedTokens: Set<String> = []
    var warehouses: [String: WarehouseState] = [:]
    var warehouseOrder: [String] = []
    var statements: [String: StatementRecord] = [:]
    /// Session id → (principal, warehouse, catalog, schema) for the driver-only sessions API.
    var sessions: [String: (principal: Int, warehouse: String, catalog: String?, schema: String?)] = [:]
    var faults: [Fault] = []
    var nextFaultID = 0
    var defaultCatalog: String
    var defaultSchema: String
    var boundAddress = "127.0.0.1:0"
    var statementCounter: UInt64 = 0
    /// Moves on with every table added or committed to: results cached under an older generation are stale.
    var dataGeneration: UInt64 = 0

    init(workspace: Workspace, now: Double) throws {
        for t in workspace.tables {
            let ts = try TableState(t)
            tables[ts.name.key] = ts
        }
        principals = workspace.principals
        for (i, p) in principals.enumerated() {
            for tok in p.tokens { patIndex[tok] = i }
        }
        for w in workspace.warehouses {
            warehouses[w.id] = WarehouseState(def: w, state: w.state)
            warehouseOrder.append(w.id)
        }
        defaultCatalog = workspace.defaultCatalog ?? "main"
        defaultSchema = workspace.defaultSchema ?? "default"
    }
}

/// A warehouse and its state machine: STOPPED → STARTING → RUNNING → STOPPING → STOPPED.
struct WarehouseState: Sendable {
    var def: Warehouse
    var state: String
    /// When a STARTING or STOPPING transition completes.
    var transitionAt: Double = 0

    /// Completes transitions that are due.
    mutating func settle(now: Double) {
        if state == "STARTING" && now >= transitionAt { state = "RUNNING" }
        if state == "STOPPING" && now >= transitionAt { state = "STOPPED" }
    }

    /// Starts the warehouse if needed; returns when it is (or will be) RUNNING.
    mutating func ensureStarted(now: Double) -> Double {
        settle(now: now)
        switch state {
        case "RUNNING": return now
        case "STARTING": return transitionAt
        default:
            state = "STARTING"
            transitionAt = now + (def.startSeconds ?? 0)
            settle(now: now)
            return state == "RUNNING" ? now : transitionAt
        }
    }

    mutating func stop(now: Double) {
        settle(now: now)
        guard state == "RUNNING" || state == "STARTING" else { return }
        state = "STOPPING"
        transitionAt = now + (def.stopSeconds ?? 1)
        settle(now: now)
    }

    mutating func force(_ s: String, now: Double) throws {
        switch s {
        case "RUNNING", "STOPPED":
            state = s
        case "STARTING":
            state = s
            transitionAt = now + (def.startSeconds ?? 0)
        case "STOPPING":
            state = s
            transitionAt = now + (def.stopSeconds ?? 1)
        default:
            throw SimulatorError("unknown warehouse state \(s)")
        }
    }
}
