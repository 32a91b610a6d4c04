import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Synchronization
import Testing
import WarehouseSimulator

@testable import CDFSyncService

/// The service for real: HTTP over loopback, the scheduler, runs on their worker thread against the simulator,
/// real LMDB and zstd.
@Suite("serve: end to end over loopback")
struct EndToEndTests {
    /// A trigger runs the pipeline; its record is served; a second trigger while the first runs is queued (and one
    /// more is coalesced with it), and runs after it.
    @Test func triggerRunsNowAndQueuesBehindARunningOne() async throws {
        let f = try ServeFixture { $0.batchSize = 100 }
        // The first run pauses at its first committed batch until released.
        let paused = DispatchSemaphore(value: 0)
        let resume = DispatchSemaphore(value: 0)
        let first = Atomic<Bool>(true)
        f.server.hooks.onEvent = { _, event in
            guard case .batchApplied = event, first.exchange(false, ordering: .relaxed) else { return }
            paused.signal()
            resume.wait()
        }
        let live = try await LiveServer(f.server)
        let started = try await live.request(.post, "/api/pipelines/panel/run")
        #expect(started.status == 202, "\(started.body)")
        #expect(started.body == #"{"pipeline":"panel","run":"started"}"#)
        #expect(try await blocking { paused.wait(timeout: .now() + 120) } == .success)

        let p = try await live.json("/api/pipelines/panel")
        #expect(p["running"] as? Bool == true)
        #expect(p["trigger"] as? String == "api")
        let again = try await live.request(.post, "/api/pipelines/panel/run")
        #expect(again.status == 202)
        #expect(again.body.contains(#""run":"queued""#), "\(again.body)")
        let third = try await live.request(.post, "/api/pipelines/panel/run")
        #expect(third.body.contains(#""run":"already_queued""#), "\(third.body)")
        #expect(try await live.json("/api/pipelines/panel")["queued"] as? Bool == true)
        resume.signal()

        // Two runs: the triggered one, then the queued one (which finds nothing new).
        let after = try await live.waitForRunEnd("panel", runsBefore: 1)
        let outcome = try #require(after["last_outcome"] as? [String: Any])
        #expect(outcome["result"] as? String == "succeeded", "\(outcome)")
        let runs = try #require(try await live.json("/api/pipelines/panel/runs")["runs"] as? [[String: Any]])
        #expect(runs.count == 2)
        #expect(runs.map { $0["run_id"] as? Int } == [2, 1], "newest first")
        let firstRun = try #require(runs.last)
        let counts = try #require(firstRun["counts"] as? [String: Any])
        #expect((counts["inserted"] as? Int ?? 0) > 0, "\(counts)")
        #expect(firstRun["status"] as? String == "succeeded")
        #expect(firstRun["last_commit_at"] is String, "the commit time of the version read: \(firstRun)")
        #expect((runs[0]["counts"] as? [String: Any])?["read"] as? Int == 0, "the second run found nothing new")
        let one = try await live.json("/api/pipelines/panel/runs/1")
        #expect(one["run_id"] as? Int == 1 && one["pipeline"] as? String == "panel")

        // The overview: checkpoint, freshness, the warehouse seen at the run.
        let view = try await live.json("/api/pipelines/panel")
        let checkpoint = try #require(view["checkpoint"] as? [String: Any])
        #expect(checkpoint["version"] as? Int == firstRun["to_version"] as? Int)
        #expect((view["freshness_seconds"] as? Double ?? -1) >= 0, "\(view)")
        let warehouse = try #require(view["warehouse"] as? [String: Any])
        #expect(warehouse["id"] as? String == "8a1c2f3d4e5b6a70")
        #expect(warehouse["state"] as? String == "RUNNING", "\(warehouse)")
        #expect((view["last_run"] as? [String: Any])?["run_id"] as? Int == 2)

        // The output was delivered where the pipeline says.
        let files = try FileManager.default.contentsOfDirectory(atPath: f.dir.sub("out-panel"))
        #expect(files.contains { $0.hasSuffix(".ndjson.zst") }, "\(files)")
        try await live.stop()
    }

    /// `/metrics` during a run (paused at a committed batch) and after it, against the run record.
    @Test func metricsFollowTheRunAndEqualItsRecord() async throws {
        let f = try ServeFixture { $0.batchSize = 100 }
        let paused = DispatchSemaphore(value: 0)
        let resume = DispatchSemaphore(value: 0)
        let appliedSoFar = Mutex<(rows: Int, applied: Int, unchanged: Int, batches: Int)>((0, 0, 0, 0))
        f.server.hooks.onEvent = { _, event in
            guard case .batchApplied(let rows, let o, _) = event else { return }
            let n = appliedSoFar.withLock { t in
                t.rows += rows
                t.applied += o.inserted + o.updated + o.linked
                t.unchanged += o.unchanged
                t.batches += 1
                return t.batches
            }
            if n == 2 {
                paused.signal()
                resume.wait()
            }
        }
        let live = try await LiveServer(f.server)
        let before = try await live.request(.get, "/metrics")
        #expect(before.status == 200)
        #expect(before.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let p = ["pipeline": "panel"]
        #expect(metric(before.body, "cdfsync_runs_total", p.merging(["outcome": "succeeded"]) { a, _ in a }) == 0,
            "\(before.body)")
        #expect(metric(before.body, "cdfsync_rows_read_total", p) == 0)

        _ = try await live.request(.post, "/api/pipelines/panel/run")
        #expect(try await blocking { paused.wait(timeout: .now() + 120) } == .success)
        // During the run: in progress, not yet counted as a run; the rows of the two committed batches applied.
        let during = try await live.request(.get, "/metrics").body
        let soFar = appliedSoFar.withLock { $0 }
        #expect(metric(during, "cdfsync_run_in_progress", p) == 1, "\(during)")
        #expect(metric(during, "cdfsync_runs_total", p.merging(["outcome": "succeeded"]) { a, _ in a }) == 0)
        #expect(metric(during, "cdfsync_rows_applied_total", p) == Double(soFar.applied), "\(during)")
        #expect(metric(during, "cdfsync_rows_unchanged_total", p) == Double(soFar.unchanged))
        #expect(soFar.applied + soFar.unchanged > 0 && soFar.rows == 200, "two batches of 100 rows")
        resume.signal()

        let view = try await live.waitForRunEnd("panel")
        let runID = try #require((view["last_outcome"] as? [String: Any])?["run_id"] as? Int)
        let record = try await live.json("/api/pipelines/panel/runs/\(runID)")
        let counts = try #require(record["counts"] as? [String: Int])
        let after = try await live.request(.get, "/metrics").body
        func value(_ name: String, _ labels: [String: String] = p) -> Double? { metric(after, name, labels) }
        #expect(value("cdfsync_run_in_progress") == 0)
        #expect(value("cdfsync_runs_total", ["pipeline": "panel", "outcome": "succeeded"]) == 1)
        #expect(value("cdfsync_runs_total", ["pipeline": "panel", "outcome": "failed"]) == 0)
        #expect(value("cdfsync_rows_read_total") == Double(counts["read"]!), "\(after)")
        #expect(counts["read"]! > 0)
        let applied = counts["inserted"]! + counts["updated"]! + counts["linked"]!
        #expect(value("cdfsync_rows_applied_total") == Double(applied))
        #expect(value("cdfsync_rows_unchanged_total") == Double(counts["unchanged"]!))
        #expect(value("cdfsync_rows_invalid_total") == Double(counts["invalid"]!))
        #expect(value("cdfsync_rows_consent_blocked_total") == Double(counts["consent_blocked"]!))
        #expect(counts["consent_blocked"]! > 0, "the demo table has participants not opted in: \(counts)")
        #expect(value("cdfsync_bytes_received_total") == Double(record["bytes_received"] as! Int))
        let statements = (record["statement_ids"] as? [String])?.count ?? -1
        #expect(value("cdfsync_statements_total") == Double(statements))
        #expect(value("cdfsync_statement_duration_seconds_count") == Double(statements))
        #expect(value("cdfsync_run_duration_seconds_count") == 1)
        let sum = try #require(value("cdfsync_run_duration_seconds_sum"))
        #expect(abs(sum - (record["seconds"] as! Double)) < 0.002, "\(sum) vs \(record["seconds"]!)")
        // Freshness and latency from the commit time of the last version applied.
        let lastCommit = try #require(Timestamps.micros(record["last_commit_at"] as! String))
        let freshness = try #require(value("cdfsync_freshness_seconds"))
        let age = Date().timeIntervalSince1970 - Double(lastCommit) / 1e6
        #expect(freshness > 0 && freshness <= age, "\(freshness) vs \(age)")
        #expect((value("cdfsync_commit_to_delivery_seconds") ?? -1) > 0)
        #expect(value("cdfsync_outbox_undelivered", ["state_dir": f.dir.sub("state")]) == 0, "\(after)")
        #expect(value("cdfsync_warehouse_state", ["warehouse": "8a1c2f3d4e5b6a70", "state": "RUNNING"]) == 1)
        #expect(value("cdfsync_errors_total", ["pipeline": "panel", "category": "other"]) == nil)
        try await live.stop()
    }

    /// Warehouse-aware: between runs nothing reaches the warehouse (a stopped one stays stopped); a due run reads its
    /// state without starting it, its first statement starts it, and the state seen last is shown.
    @Test func betweenRunsNothingReachesTheWarehouse() async throws {
        let log = Mutex<[String]>([])
        var simulator = Simulator.Configuration()
        simulator.requestLog = { line in log.withLock { $0.append(line) } }
        let dir = TempDir("serve-warehouse")
        let f = try ServeFixture(simulator: simulator,
            pipelines: ["panel.yaml": pipelineYAML(dir: dir, schedule: "daily")])
        try f.sim.sim.setWarehouseState(id: "8a1c2f3d4e5b6a70", state: "STOPPED")
        f.server.start()
        for _ in 0..<20 { f.server.tick() }
        #expect(log.withLock { $0 } == [], "no request between runs: \(log.withLock { $0 })")
        #expect(f.server.state.get("panel").warehouse == nil)
        #expect(f.server.state.get("panel").nextRun != nil, "due at its next boundary, not now")

        #expect(f.server.trigger("panel", by: "api").isAccepted)
        let end = Date().addingTimeInterval(120)
        while f.server.state.get("panel").lastOutcome == nil && Date() < end { try await Task.sleep(for: .milliseconds(20)) }
        let p = f.server.state.get("panel")
        #expect(p.lastOutcome?.result == "succeeded", "\(String(describing: p.lastOutcome))")
        let requests = log.withLock { $0 }
        #expect(requests.first?.hasPrefix("GET /api/2.0/sql/warehouses/8a1c2f3d4e5b6a70 200") == true,
            "the state is read first, which does not start it: \(requests.prefix(3))")
        #expect(requests.contains { $0.hasPrefix("POST /api/2.0/sql/statements") })
        #expect(p.warehouse?.state == "RUNNING", "the state seen last (after the run): \(String(describing: p.warehouse))")

        log.withLock { $0 = [] }
        for _ in 0..<20 { f.server.tick() }
        #expect(log.withLock { $0 } == [], "again nothing between runs")
        f.server.beginStopping()
        await f.server.waitForRuns()
    }

    /// A failed run counts as failed, with its error's category, and its record's counts.
    @Test func aFailedRunIsCountedByOutcomeAndCategory() async throws {
        let f = try ServeFixture(pipelines: nil) { config in
            let settings = config.connectionSettings
            config.connectionSettings = { spec in
                var s = try settings(spec)
                s.authentication = .personalAccessToken(.init("dapi-wrong-token"))
                return s
            }
        }
        let live = try await LiveServer(f.server)
        _ = try await live.request(.post, "/api/pipelines/panel/run")
        let view = try await live.waitForRunEnd("panel")
        let outcome = try #require(view["last_outcome"] as? [String: Any])
        #expect(outcome["result"] as? String == "failed", "\(outcome)")
        let text = try await live.request(.get, "/metrics").body
        #expect(metric(text, "cdfsync_runs_total", ["pipeline": "panel", "outcome": "failed"]) == 1, "\(text)")
        #expect(metric(text, "cdfsync_errors_total", ["pipeline": "panel", "category": "authentication failed"]) == 1, "\(text)")
        // The token never appears in an answer (the error names the cause, not the credential).
        let pipelines = try await live.request(.get, "/api/pipelines").body
        #expect(!pipelines.contains("dapi-wrong-token") && !text.contains("dapi-wrong-token"))
        try await live.stop()
    }
}
