import CDFSyncCore
import Foundation
import Logging

/// A SQL warehouse as `GET /api/2.0/sql/warehouses/{id}` describes it (spec §6). Unknown fields are ignored.
public struct WarehouseInfo: Sendable, Decodable, Equatable {
    /// `health.status` and its texts; a missing `health` means healthy.
    public struct Health: Sendable, Decodable, Equatable {
        public var status: String?
        public var summary: String?
        public var message: String?
        public var failureReason: String?

        enum CodingKeys: String, CodingKey {
            case status, summary, message
            case failureReason = "failure_reason"
        }

        public init(status: String?, summary: String? = nil, message: String? = nil, failureReason: String? = nil) {
            self.status = status
            self.summary = summary
            self.message = message
            self.failureReason = failureReason
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            status = try c.decodeIfPresent(String.self, forKey: .status)
            summary = try c.decodeIfPresent(String.self, forKey: .summary)
            message = try c.decodeIfPresent(String.self, forKey: .message)
            // Databricks sends an object here; keep only a string form if it is one.
            failureReason = try? c.decodeIfPresent(String.self, forKey: .failureReason)
        }
    }

    public var id: String
    public var name: String?
    /// `STARTING | RUNNING | STOPPING | STOPPED | DELETING | DELETED`, kept open.
    public var state: String
    public var clusterSize: String?
    public var health: Health?

    enum CodingKeys: String, CodingKey {
        case id, name, state, health
        case clusterSize = "cluster_size"
    }

    public init(id: String, name: String? = nil, state: String, clusterSize: String? = nil, health: Health? = nil) {
        self.id = id
        self.name = name
        self.state = state
        self.clusterSize = clusterSize
        self.health = health
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? ""
        name = try c.decodeIfPresent(String.self, forKey: .name)
        state = try c.decodeIfPresent(String.self, forKey: .state) ?? "UNKNOWN"
        clusterSize = try c.decodeIfPresent(String.self, forKey: .clusterSize)
        health = try c.decodeIfPresent(Health.self, forKey: .health)
    }

    /// `health.status`, with a missing `health` read as `HEALTHY` (spec §6).
    public var healthStatus: String { health?.status ?? "HEALTHY" }
}

/// The SQL Warehouses API: read a warehouse, start it, and wait until it runs.
///
/// - Important: not thread-safe (it owns one libcurl handle); use one client per thread.
public final class WarehousesClient {
    public let settings: ConnectionSettings
    let api: WorkspaceAPI

    /// - Parameters:
    ///   - settings: the workspace and credentials.
    ///   - tokens: a token provider to share (e.g. with a `StatementClient`); by default one is made from `settings`.
    public init(settings: ConnectionSettings, tokens: (any TokenProvider)? = nil) {
        self.settings = settings
        api = WorkspaceAPI(settings: settings, tokens: tokens ?? WorkspaceAPI.defaultTokens(for: settings))
    }

    /// Retries of each request (429, 5xx, network errors). Lower `maxAttempts` for quick diagnostics.
    public var retryPolicy: RetryPolicy {
        get { api.retryPolicy }
        set { api.retryPolicy = newValue }
    }

    /// `GET /api/2.0/sql/warehouses/{id}`.
    /// - Throws: `DatabricksError`: `.warehouseNotFound`, `.permissionDenied` (no permission on the warehouse),
    ///   `.authenticationFailed`, `.hostUnreachable`, ...
    public func warehouse(id: String? = nil) throws -> WarehouseInfo {
        let id = id ?? settings.warehouseID
        return try api.getJSON(WarehouseInfo.self, path: "/api/2.0/sql/warehouses/\(Self.pathComponent(id))",
            context: "reading warehouse \(id)")
    }

    /// `POST /api/2.0/sql/warehouses/{id}/start` (body `{}`). Starting a running warehouse is harmless.
    public func start(id: String? = nil) throws {
        let id = id ?? settings.warehouseID
        _ = try api.send(.post, path: "/api/2.0/sql/warehouses/\(Self.pathComponent(id))/start",
            body: Array("{}".utf8), rule: .idempotent, context: "starting warehouse \(id)",
            restart: {}, consume: { _ in })
    }

    /// Polls the warehouse until it is `RUNNING`; see ``WarehouseWaiter``.
    ///
    /// - Parameters:
    ///   - afterStart: whether a start was just requested, so that one lagging `STOPPED` is tolerated.
    ///   - logger: told "warehouse starting (Ns)" (notice) on every poll that is not yet RUNNING.
    /// - Returns: the RUNNING warehouse.
    public func waitUntilRunning(
        id: String? = nil, afterStart: Bool = true, waiter: WarehouseWaiter = WarehouseWaiter(),
        logger: Logger = Logger(label: "cdfsync.client")
    ) throws -> WarehouseInfo {
        try waiter.wait(afterStart: afterStart, poll: { try warehouse(id: id) }, logger: logger)
    }

    static func pathComponent(_ id: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-_")
        return id.addingPercentEncoding(withAllowedCharacters: allowed) ?? id
    }
}

@available(*, unavailable)
extension WarehousesClient: Sendable {}

/// Waits for a warehouse to reach `RUNNING` against a wall-clock deadline (spec §6 and §9.4).
///
/// `STARTING` keeps waiting. A `STOPPED` right after a start request is tolerated while no `STARTING` has been
/// seen yet and for at most `stoppedGrace` polls, because the first GET after `/start` can lag (Airflow #70088);
/// a `STOPPED` after that, or `DELETING`/`DELETED`, fails. `STOPPING` is waited through when a start was asked for
/// (the warehouse restarts once stopped). The deadline is measured by wall clock, including the time each GET took.
public struct WarehouseWaiter: Sendable {
    /// Seconds to wait in total (the SDK waiters use 20 minutes).
    public var timeout: Double
    /// Seconds to sleep before poll `n` (1-based).
    public var interval: @Sendable (Int) -> Double
    /// Polls that may still say STOPPED after a start request.
    public var stoppedGrace: Int
    /// Sleeps; replaceable in tests.
    public var sleep: @Sendable (Double) -> Void
    /// The wall clock; replaceable in tests.
    public var now: @Sendable () -> Date

    public init(
        timeout: Double = 1200, interval: @escaping @Sendable (Int) -> Double = { n in min(0.5 * Double(n), 5) },
        stoppedGrace: Int = 2, sleep: @escaping @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) },
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.timeout = timeout
        self.interval = interval
        self.stoppedGrace = stoppedGrace
        self.sleep = sleep
        self.now = now
    }

    /// Calls `poll` until it reports `RUNNING`.
    /// - Throws: `DatabricksError` `.warehouseStartTimeout` when the deadline passes, `.warehouseStopped` when the
    ///   warehouse stays or goes STOPPED, `.warehouseNotFound` when it is being deleted; errors of `poll` pass through.
    public func wait(
        afterStart: Bool, poll: () throws -> WarehouseInfo, logger: Logger = Logger(label: "cdfsync.client")
    ) throws -> WarehouseInfo {
        let started = now()
        let deadline = started.addingTimeInterval(timeout)
        var polls = 0
        var sawStarting = false
        while true {
            let info = try poll()
            polls += 1
            let elapsed = Int(now().timeIntervalSince(started))
            switch info.state {
            case "RUNNING":
                return info
            case "STARTING":
                sawStarting = true
            case "STOPPING" where afterStart:
                break
            case "STOPPED" where afterStart && !sawStarting && polls <= stoppedGrace:
                break
            case "DELETING", "DELETED":
                throw DatabricksError(.warehouseNotFound, "warehouse \(info.id) is \(info.state.lowercased())",
                    remedy: "The warehouse is being deleted; pick another one under SQL Warehouses and update the connection.")
            default:
                throw DatabricksError(.warehouseStopped,
                    "warehouse \(info.id) is \(info.state)\(afterStart ? " after a start request" : "")",
                    remedy: "Start the warehouse in SQL Warehouses (or let cdfsync start it: needs CAN USE), and check its health and quota.")
            }
            if now() >= deadline {
                throw DatabricksError(.warehouseStartTimeout,
                    "warehouse \(info.id) was still \(info.state) after \(elapsed) s",
                    remedy: "Cold starts can take minutes; wait and retry, raise the start timeout, or use a serverless warehouse.")
            }
            logger.notice("warehouse starting (\(elapsed)s)", metadata: ["warehouse_id": "\(info.id)"])
            let remaining = deadline.timeIntervalSince(now())
            sleep(max(0, min(interval(polls), remaining)))
        }
    }
}

extension WarehousesClient {
    /// Checks that the workspace answers at all: a GET of the warehouse **without** credentials, so any HTTP
    /// status (typically 401) proves that DNS, TCP and TLS work. Nothing secret is sent.
    /// - Returns: the HTTP status the host answered with.
    /// - Throws: `DatabricksError` `.hostUnreachable`, `.tls` or `.timedOut`.
    public func probeReachability() throws -> Int {
        let transport = CurlTransport(options: settings.transport)
        let request = HTTPRequest(
            method: .get, url: settings.baseURL + "/api/2.0/sql/warehouses/\(Self.pathComponent(settings.warehouseID))",
            headers: [("Accept", "application/json")])
        do {
            let (head, _) = try transport.performCollecting(request, limit: 1 << 20)
            return head.status
        } catch let e as TransportError {
            throw ErrorClassification.transport(e, context: "reaching \(settings.hostName)")
        }
    }

    /// The token provider this client authenticates with (share it with a `StatementClient`).
    public var tokenProvider: any TokenProvider { api.tokens }
}
