import CDFSyncClient
import CDFSyncCore
import Foundation
import Logging

/// One step of `cdfsync connection test`.
public struct ConnectionCheck: Sendable, Equatable {
    /// The steps, in the order they run.
    public enum Step: String, Sendable, CaseIterable {
        case reachable = "host reachable"
        case authenticated = "authenticated"
        case warehouse = "warehouse running"
        case statement = "SELECT 1"
        case catalogs = "catalogs visible"
    }

    public var step: Step
    public var passed: Bool
    /// A short fact: what answered, which warehouse state, how many catalogs; for a failure, the error message.
    public var detail: String
    public var milliseconds: Int

    public init(step: Step, passed: Bool, detail: String, milliseconds: Int) {
        self.step = step
        self.passed = passed
        self.detail = detail
        self.milliseconds = milliseconds
    }

    /// `✓ host reachable   127.0.0.1:8080 answered HTTP 401 (3 ms)`.
    public func render() -> String {
        let pad = String(repeating: " ", count: max(0, 18 - step.rawValue.count))
        return "\(passed ? "✓" : "✗") \(step.rawValue)\(pad) \(detail) (\(milliseconds) ms)"
    }
}

/// The outcome of `cdfsync connection test`.
public struct ConnectionTestReport: Sendable {
    /// The steps that ran; the last one failed when `failure` is set.
    public var checks: [ConnectionCheck]
    /// The first failure, with its category and remedy.
    public var failure: DatabricksError?

    /// Whether every step passed.
    public var passed: Bool { failure == nil && checks.count == ConnectionCheck.Step.allCases.count }

    /// Every check on its own line, then, on failure, the category and the one-line remedy.
    public func render() -> String {
        var lines = checks.map { $0.render() }
        if let f = failure {
            lines.append("")
            lines.append("  \(f.category): \(f.message)")
            lines.append("  remedy: \(f.remedy)")
        }
        return lines.joined(separator: "\n")
    }

    /// `cdfsync connection test --json`: `passed`, every step that ran (`step`, `passed`, `detail`, `milliseconds`),
    /// and the failure (`category`, `message`, `remedy`, `error_class`, `http_status`) or null. Every step is listed
    /// in `steps`, in order, so a reader sees which ones did not run.
    public func json() -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("passed"); w.bool(passed)
        w.key("steps"); w.beginArray(); ConnectionCheck.Step.allCases.forEach { w.string($0.rawValue) }; w.endArray()
        w.key("checks")
        w.beginArray()
        for c in checks {
            w.beginObject()
            w.key("step"); w.string(c.step.rawValue)
            w.key("passed"); w.bool(c.passed)
            w.key("detail"); w.string(c.detail)
            w.key("milliseconds"); w.int(Int64(c.milliseconds))
            w.endObject()
        }
        w.endArray()
        w.key("failure")
        if let f = failure {
            w.beginObject()
            w.key("category"); w.string(f.category.name)
            w.key("message"); w.string(f.message)
            w.key("remedy"); w.string(f.remedy)
            w.key("error_class"); w.string(f.errorClass)
            w.key("http_status"); if let s = f.httpStatus { w.int(Int64(s)) } else { w.null() }
            w.endObject()
        } else {
            w.null()
        }
        w.endObject()
        return w.bytes
    }
}

/// Runs the connection checks in order and stops at the first failure:
/// host reachable → authenticated → warehouse running (started and waited for when allowed) → `SELECT 1` →
/// catalogs visible.
public struct ConnectionTester {
    public var settings: ConnectionSettings
    /// Start a stopped warehouse and wait for it (default on).
    public var startWarehouse = true
    /// How long and how often to wait for a starting warehouse.
    public var waiter = WarehouseWaiter()
    /// Seconds the `SELECT 1` and `SHOW CATALOGS` statements may take each.
    public var statementDeadline: Double = 300
    /// Attempts per request (diagnostics should answer fast: few retries).
    public var maxAttempts = 2
    /// Called after each check, as it completes.
    public var onCheck: (ConnectionCheck) -> Void = { _ in }
    /// Told a warehouse being started and waited for (notice), and what the client logs.
    public var logger = Logger(label: "cdfsync.connection-test")

    public init(settings: ConnectionSettings) { self.settings = settings }

    /// Runs the checks; never throws: a failure ends the report.
    public func run() -> ConnectionTestReport {
        var checks: [ConnectionCheck] = []
        func record(_ step: ConnectionCheck.Step, _ started: Date, _ passed: Bool, _ detail: String) {
            let ms = Int((Date().timeIntervalSince(started) * 1000).rounded())
            let c = ConnectionCheck(step: step, passed: passed, detail: detail, milliseconds: ms)
            checks.append(c)
            onCheck(c)
        }
        func fail(_ step: ConnectionCheck.Step, _ started: Date, _ error: any Error) -> ConnectionTestReport {
            let e = (error as? DatabricksError)
                ?? DatabricksError(.invalidResponse, "\(error)", remedy: "Unexpected failure; report it with this message.")
            record(step, started, false, e.message)
            return ConnectionTestReport(checks: checks, failure: e)
        }

        var policy = RetryPolicy()
        policy.maxAttempts = max(1, maxAttempts)
        policy.budget = 30
        let tokens: any TokenProvider =
            switch settings.authentication {
            case .personalAccessToken(let t): StaticTokenProvider(token: t)
            case .oauthM2M(let id, let secret, let scope):
                OAuthM2MTokenProvider(baseURL: settings.baseURL, clientID: id, clientSecret: secret, scope: scope)
            }
        let warehouses = WarehousesClient(settings: settings, tokens: tokens)
        warehouses.retryPolicy = policy
        let hostPort = settings.baseURL.components(separatedBy: "://").last ?? settings.baseURL

        // 1. Reachable: any HTTP answer to an unauthenticated request.
        var t = Date()
        do {
            let status = try warehouses.probeReachability()
            record(.reachable, t, true, "\(hostPort) answered (HTTP \(status) without credentials)")
        } catch {
            return fail(.reachable, t, error)
        }

        // 2. Authenticated: the warehouse GET with the credential. A permission error still proves the credential.
        t = Date()
        var info: WarehouseInfo?
        var warehouseError: DatabricksError?
        do {
            info = try warehouses.warehouse()
        } catch let e as DatabricksError where e.category == .permissionDenied || e.category == .warehouseNotFound {
            warehouseError = e
        } catch {
            return fail(.authenticated, t, error)
        }
        record(.authenticated, t, true, "\(settings.authentication) accepted")

        // 3. Warehouse: visible to the identity and RUNNING (started when allowed).
        t = Date()
        if let e = warehouseError { return fail(.warehouse, t, e) }
        guard var w = info else { return fail(.warehouse, t, DatabricksError(.invalidResponse, "no warehouse", remedy: "")) }
        let label = (w.name.map { "'\($0)' " } ?? "") + "(\(w.id))"
        do {
            switch w.state {
            case "RUNNING":
                break
            case "STOPPED", "STOPPING", "STARTING":
                guard startWarehouse || w.state == "STARTING" else {
                    throw DatabricksError(.warehouseStopped, "warehouse \(label) is \(w.state)",
                        remedy: "Start it in SQL Warehouses, or run the test with --start-warehouse (needs CAN USE).")
                }
                if w.state != "STARTING" { try warehouses.start() }
                logger.notice("warehouse \(label) is \(w.state); starting it")
                w = try warehouses.waitUntilRunning(afterStart: w.state != "STARTING", waiter: waiter, logger: logger)
                let secs = Date().timeIntervalSince(t)
                record(.warehouse, t, true, "\(label) started, RUNNING after \(String(format: "%.1f", secs)) s")
            default:
                throw DatabricksError(.warehouseNotFound, "warehouse \(label) is \(w.state)",
                    remedy: "The warehouse is being deleted or is unusable; pick another one and update the connection.")
            }
            if checks.last?.step != .warehouse {
                if w.healthStatus == "FAILED" {
                    throw DatabricksError(.serverError,
                        "warehouse \(label) is RUNNING but unhealthy: \(w.health?.summary ?? w.health?.message ?? "FAILED")",
                        remedy: "Check the warehouse's monitoring page; restart it or contact the workspace admin.")
                }
                record(.warehouse, t, true, "\(label) RUNNING, \(w.healthStatus)")
            }
        } catch {
            return fail(.warehouse, t, error)
        }

        // 4. A trivial statement.
        t = Date()
        let client = StatementClient(settings: settings, tokens: tokens)
        client.retryPolicy = policy
        client.statementDeadline = statementDeadline
        client.logger = logger
        do {
            let rows = try client.collect(Statement(sql: "SELECT 1"))
            guard rows.rows.count == 1, rows.rows[0].first??.trimmingCharacters(in: .whitespaces) == "1" else {
                throw DatabricksError(.invalidResponse, "SELECT 1 returned \(rows.rows.count) rows: \(rows.rows.prefix(2))",
                    remedy: "The warehouse answered unexpectedly; check that the host is a Databricks workspace.")
            }
            record(.statement, t, true, "returned 1")
        } catch {
            return fail(.statement, t, error)
        }

        // 5. Catalogs visible (SHOW CATALOGS is filtered by privilege on the server).
        t = Date()
        do {
            let rows = try client.collect(Statement(sql: "SHOW CATALOGS"))
            let names = rows.rows.compactMap { $0.first ?? nil }
            guard !names.isEmpty else {
                throw DatabricksError(.permissionDenied, "no catalog is visible to this identity",
                    remedy: "Grant USE CATALOG on the source catalog (GRANT USE CATALOG ON CATALOG <catalog> TO <principal>), plus USE SCHEMA and SELECT on what to sync.")
            }
            let shown = names.prefix(5).joined(separator: ", ") + (names.count > 5 ? ", …" : "")
            record(.catalogs, t, true, "\(names.count) catalog\(names.count == 1 ? "" : "s"): \(shown)")
        } catch {
            return fail(.catalogs, t, error)
        }
        return ConnectionTestReport(checks: checks, failure: nil)
    }
}
