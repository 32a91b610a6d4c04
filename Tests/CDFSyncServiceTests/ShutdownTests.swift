import CDFSyncClient
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

@testable import CDFSyncService

/// SIGTERM to the built `cdfsync serve` while a run is in progress: the run stops at a batch boundary, is recorded,
/// the state directory is released, and the process exits 0; the next run resumes from the checkpoint.
@Suite("serve: SIGTERM")
struct ShutdownTests {
    /// Starts `cdfsync serve` on any free port; returns the process and its port (read from its first line).
    func startServe(_ dir: TempDir, sim: RunningSimulator, extra: [String] = []) throws -> (Process, Int) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try BuiltProduct.cdfsync.path)
        p.arguments = ["serve", "--pipelines", dir.sub("pipelines"), "--port", "0", "--state-dir", dir.sub("state")]
            + extra
        p.environment = ["DATABRICKS_TOKEN": "dapi-demo-token", "DATABRICKS_HOST": sim.baseURL, "PATH": "/usr/bin:/bin"]
        let log = dir.sub("serve.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        let end = Date().addingTimeInterval(60)
        while Date() < end && p.isRunning {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: "listening on http://127.0.0.1:") {
                let port = Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
                if port > 0 { return (p, port) }
            }
            usleep(20_000)
        }
        throw SyncError("cdfsync serve did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")",
            remedy: "")
    }

    func request(_ method: HTTPRequest.Method, _ port: Int, _ path: String) throws -> (status: Int, body: String) {
        let (head, body) = try CurlTransport().performCollecting(
            HTTPRequest(method: method, url: "http://127.0.0.1:\(port)\(path)"))
        return (head.status, String(decoding: body, as: UTF8.self))
    }

    @Test func sigtermFinishesTheBatchRecordsTheRunAndExitsZero() throws {
        // The change-data statement stays PENDING (a queued warehouse) until it is cancelled: the run is surely in
        // progress when the signal comes, and cannot end without it.
        let sim = try RunningSimulator()
        _ = sim.sim.addFault(Fault(match: .init(statementContains: "table_changes"), count: 1, kind: .queue,
            polls: 1_000_000))
        let dir = TempDir("serve-sigterm")
        try FileManager.default.createDirectory(atPath: dir.sub("pipelines"), withIntermediateDirectories: true)
        try pipelineYAML(dir: dir).write(toFile: dir.sub("pipelines/panel.yaml"), atomically: true, encoding: .utf8)
        let (serve, port) = try startServe(dir, sim: sim)
        defer { if serve.isRunning { kill(serve.processIdentifier, SIGKILL) } }

        let trigger = try request(.post, port, "/api/pipelines/panel/run")
        #expect(trigger.status == 202, "\(trigger.body)")
        // Wait until the run holds the state directory.
        let end = Date().addingTimeInterval(60)
        while Date() < end, WriterLock.holder(of: dir.sub("state"))?.pid != serve.processIdentifier { usleep(20_000) }
        #expect(WriterLock.holder(of: dir.sub("state"))?.command?.contains("serve") == true)

        kill(serve.processIdentifier, SIGTERM)
        let exitBy = Date().addingTimeInterval(60)
        while serve.isRunning && Date() < exitBy { usleep(20_000) }
        let log = (try? String(contentsOfFile: dir.sub("serve.log"), encoding: .utf8)) ?? ""
        #expect(!serve.isRunning, "still running 60 s after SIGTERM: \(log)")
        serve.waitUntilExit()
        #expect(serve.terminationReason == .exit && serve.terminationStatus == 0, "exit \(serve.terminationStatus): \(log)")
        #expect(log.contains("stopped"), "\(log)")
        #expect(WriterLock.holder(of: dir.sub("state")) == nil, "the state directory is released")

        // The run is recorded as stopped (not left running), what it applied stands.
        do {
            let store = try PanelStore(directory: dir.sub("state"), access: .reader)
            let json = try #require(try store.runs(limit: 1).first?.json)
            let record = try RunRecord(json: json)
            #expect(record.status == .failed, "\(record.status)")
            #expect(record.error?.contains("statement canceled") == true, "\(record.error ?? "")")
            #expect(record.counts.read == record.counts.accounted)
        }

        // A new service resumes (the warehouse no longer holds the statement in its queue): the panel ends complete.
        sim.sim.clearFaults()
        let (again, port2) = try startServe(dir, sim: sim)
        defer { if again.isRunning { kill(again.processIdentifier, SIGKILL) } }
        #expect(try request(.post, port2, "/api/pipelines/panel/run").status == 202)
        let done = Date().addingTimeInterval(120)
        var succeeded = false
        while Date() < done {
            let body = try request(.get, port2, "/api/pipelines/panel").body
            if body.contains(#""result":"succeeded""#) {
                succeeded = true
                break
            }
            usleep(100_000)
        }
        #expect(succeeded)
        kill(again.processIdentifier, SIGTERM)
        again.waitUntilExit()
        #expect(again.terminationStatus == 0)
        let reopened = try PanelStore(directory: dir.sub("state"), access: .reader)
        let last = try RunRecord(json: try #require(try reopened.runs(limit: 1).first?.json))
        #expect(last.status == .succeeded && last.checkpointVersion == last.latestVersion && last.counts.inserted > 0,
            "the second service's run read everything from the start: \(last.counts)")
    }
}
