import CDFSyncCore
import Foundation

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
    let state: Locked<SimState>
    private let server = Locked<HTTPServer?>(nil)
    /// Signs external links; random per process.
    let linkSecret: UInt64
    let blobCache: Locked<BlobCache>
    /// Databricks SQL's result cache (``ResultCache``).
    let resultCache: Locked<ResultCache>
    /// Bodies accepted by the stand-in webhook receiver (`/_hook/`).
    let webhooks = WebhookLog()

    /// Creates a simulator over `workspace`. Nothing listens until `start`.
    public init(workspace: Workspace, configuration: Configuration = .init(), clock: SimulatorClock = SimulatorClock())
        throws
    {
        try workspace.validate()
        self.configuration = configuration
        self.clock = clock
        self.state = Locked(try SimState(workspace: workspace, now: clock.now))
        blobCache = Locked(BlobCache(limit: max(256 << 20, configuration.resultCacheBytes)))
        resultCache = Locked(ResultCache(limit: configuration.resultCacheBytes))
        var rng = SystemRandomNumberGenerator()
        linkSecret = rng.next()
    }

    /// Starts listening; returns the bound port (pass 0 for any free port).
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 0) throws -> Int {
        let srv = HTTPServer { [self] req in handle(req) }
        let bound = try srv.start(host: host, port: port)
        server.withLock { $0 = srv }
        state.withLock { $0.boundAddress = "\(host):\(bound)" }
        return bound
    }

    /// Stops listening and closes open connections.
    public func stop() {
        let srv = server.withLock { s -> HTTPServer? in
            let x = s
            s = nil
            return x
        }
        srv?.stop()
    }

    /// The bound port, when started.
    public var port: Int? { server.withLock { $0?.port } }

    /// `http://host:port` of the running server (the workspace URL a client is given), when started.
    public var baseURL: String? {
        guard port != nil else { return nil }
        return "http://" + state.withLock { $0.boundAddress }
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

    /// Takes the first `queue` fault matching `sql` (counting it down): how many statement responses say PENDING.
    func takeQueueFault(_ sql: String) -> Int? {
        state.withLock { s in
            for (i, f) in s.faults.enumerated() where f.matches(queued: sql) {
                if let c = f.count {
                    if c <= 1 { s.faults.remove(at: i) } else { s.faults[i].count = c - 1 }
                }
                return max(1, f.polls ?? 2)
            }
            return nil
        }
    }

    /// Takes the first `sql_error` fault matching `sql` (counting it down), as the error the statement fails with.
    func takeStatementFault(_ sql: String) -> SQLError? {
        state.withLock { s in
            for (i, f) in s.faults.enumerated() where f.matches(statement: sql) {
                if let c = f.count {
                    if c <= 1 { s.faults.remove(at: i) } else { s.faults[i].count = c - 1 }
                }
                var e = SQLError(f.errorClass ?? "INTERNAL_ERROR", f.sqlState ?? "XX000", f.message ?? "Injected failure.")
                if let code = f.errorCode { e.errorCode = code }
                return e
            }
            return nil
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

/// An injected fault (admin `POST /_sim/faults`).
public struct Fault: Sendable, Codable {
    public struct Match: Sendable, Codable {
        public var method: String?
        public var pathPrefix: String?
        /// `sql_error` faults: statements whose SQL text contains this (case-insensitive).
        public var statementContains: String?
        enum CodingKeys: String, CodingKey {
            case method
            case pathPrefix = "path_prefix"
            case statementContains = "statement_contains"
        }
        public init(method: String? = nil, pathPrefix: String? = nil, statementContains: String? = nil) {
            self.method = method
            self.pathPrefix = pathPrefix
            self.statementContains = statementContains
        }
    }

    public var id: Int = 0
    public var match: Match
    /// How many matching requests it affects (nil = until cleared).
    public var count: Int?
    /// `status`, `reset_mid_body`, `slow`, `drop`, `expire_links`, `revoke_token`, `corrupt_body`, `sql_error`.
    public var kind: String
    public var status: Int?
    public var retryAfter: Int?
    public var delayMillis: Int?
    public var errorCode: String?
    public var message: String?
    /// `sql_error`: the statement FAILS with `[<error_class>] <message> SQLSTATE: <sql_state>`, as a warehouse
    /// error the simulator does not model otherwise would.
    public var errorClass: String?
    public var sqlState: String?
    /// `queue`: how many statement responses (the submit's included) say PENDING before one says RUNNING.
    public var polls: Int?
    /// `tamper`: the edits made to a matching response (see ``Tamper``).
    public var tamper: [Tamper]?

    enum CodingKeys: String, CodingKey {
        case id, match, count, kind, status, message, polls, tamper
        case retryAfter = "retry_after"
        case delayMillis = "delay_ms"
        case errorCode = "error_code"
        case errorClass = "error_class"
        case sqlState = "sql_state"
    }

    public init(
        match: Match = Match(), count: Int? = 1, kind: String, status: Int? = nil, retryAfter: Int? = nil,
        delayMillis: Int? = nil, message: String? = nil, polls: Int? = nil
    ) {
        self.message = message
        self.polls = polls
        self.match = match
        self.count = count
        self.kind = kind
        self.status = status
        self.retryAfter = retryAfter
        self.delayMillis = delayMillis
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        match = try c.decodeIfPresent(Match.self, forKey: .match) ?? Match()
        count = try c.decodeIfPresent(Int.self, forKey: .count)
        kind = try c.decode(String.self, forKey: .kind)
        status = try c.decodeIfPresent(Int.self, forKey: .status)
        retryAfter = try c.decodeIfPresent(Int.self, forKey: .retryAfter)
        delayMillis = try c.decodeIfPresent(Int.self, forKey: .delayMillis)
        errorCode = try c.decodeIfPresent(String.self, forKey: .errorCode)
        message = try c.decodeIfPresent(String.self, forKey: .message)
        errorClass = try c.decodeIfPresent(String.self, forKey: .errorClass)
        sqlState = try c.decodeIfPresent(String.self, forKey: .sqlState)
        polls = try c.decodeIfPresent(Int.self, forKey: .polls)
        tamper = try c.decodeIfPresent([Tamper].self, forKey: .tamper)
    }

    static let kinds: Set<String> = [
        "status", "reset_mid_body", "slow", "drop", "expire_links", "revoke_token", "corrupt_body", "sql_error",
        "queue", "proxy_status", "tamper",
    ]

    /// Whether an HTTP-level fault applies to `req` (`sql_error` and `queue` faults apply to statements, not requests).
    func matches(_ req: HTTPRequest) -> Bool {
        if kind == "sql_error" || kind == "queue" || kind == "tamper" { return false }
        if let m = match.method, m.uppercased() != req.method { return false }
        if let p = match.pathPrefix, !req.path.hasPrefix(p) { return false }
        return true
    }

    /// Whether a `queue` fault applies to a statement with this SQL text.
    func matches(queued sql: String) -> Bool {
        guard kind == "queue" else { return false }
        guard let needle = match.statementContains else { return true }
        return sql.range(of: needle, options: .caseInsensitive) != nil
    }

    /// Whether a `tamper` fault applies to a response to `req` that carries a statement with this SQL text (nil: no
    /// statement).
    func matches(tampering req: HTTPRequest, statementSQL sql: String?) -> Bool {
        guard kind == "tamper" else { return false }
        if let m = match.method, m.uppercased() != req.method { return false }
        if let p = match.pathPrefix, !req.path.hasPrefix(p) { return false }
        guard let needle = match.statementContains else { return true }
        return sql?.range(of: needle, options: .caseInsensitive) != nil
    }

    /// Whether a `sql_error` fault applies to a statement with this SQL text.
    func matches(statement sql: String) -> Bool {
        guard kind == "sql_error" else { return false }
        guard let needle = match.statementContains else { return true }
        return sql.range(of: needle, options: .caseInsensitive) != nil
    }
}
