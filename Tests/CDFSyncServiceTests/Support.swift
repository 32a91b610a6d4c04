import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import ServiceLifecycle
import Synchronization
import Testing
import WarehouseSimulator

@testable import CDFSyncService

/// A pipeline file of the demo participants table, its state and output in `dir`.
func pipelineYAML(name: String = "panel", dir: TempDir, schedule: String? = nil) -> String {
    """
    name: \(name)
    connection:
      warehouse_id: 8a1c2f3d4e5b6a70
      token_env: DATABRICKS_TOKEN
    source: main.research.participants
    kind: participants
    mode: cdf
    start: first
    mapping:
      external_id: participant_id
      first_name: first_name
      email: email
      country: country
      consent_status: consent_status
    consent:
      column: consent_status
      opted_in: [opted_in, "yes"]
    sinks:
      - type: ndjson
        directory: \(dir.sub("out-\(name)"))
    state_dir: \(dir.sub("state"))
    \(schedule.map { "schedule: \($0)" } ?? "")

    """
}

/// A server on the demo pipelines against a running simulator, in this process.
struct ServeFixture {
    let sim: RunningSimulator
    let dir: TempDir
    let server: CDFSyncServer

    /// - Parameters:
    ///   - pipelines: file name → YAML, written into `dir/pipelines`.
    ///   - configure: changes to the configuration (token, batch size, …).
    init(simulator: Simulator.Configuration = .init(), pipelines: [String: String]? = nil,
         configure: (inout ServeConfiguration) -> Void = { _ in }) throws {
        sim = try RunningSimulator(configuration: simulator)
        dir = TempDir("serve")
        try FileManager.default.createDirectory(atPath: dir.sub("pipelines"), withIntermediateDirectories: true)
        for (file, yaml) in pipelines ?? ["panel.yaml": pipelineYAML(dir: dir)] {
            try yaml.write(toFile: dir.sub("pipelines/" + file), atomically: true, encoding: .utf8)
        }
        let settings = try sim.settings()
        var config = ServeConfiguration(pipelinesDirectory: dir.sub("pipelines")) { _ in settings }
        config.port = 0
        config.stateDirectory = dir.sub("state")
        config.configDirectory = dir.sub("config")
        configure(&config)
        server = try CDFSyncServer(configuration: config)
    }
}

/// A server running for real on a loopback port (HTTP server and scheduler), stopped gracefully by `stop()`.
final class LiveServer: @unchecked Sendable {
    let server: CDFSyncServer
    let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(_ server: CDFSyncServer) async throws {
        self.server = server
        let bound = AsyncStream<Int>.makeStream()
        let group = server.makeServiceGroup(signals: []) { port in bound.continuation.yield(port) }
        self.group = group
        task = Task { try await group.run() }
        var port = 0
        for await p in bound.stream {
            port = p
            break
        }
        self.port = port
    }

    var base: String { "http://127.0.0.1:\(port)" }

    /// Graceful shutdown, as SIGTERM starts it; returns when the group has ended.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }

    /// A real HTTP request over loopback (libcurl), on a Dispatch thread.
    func request(_ method: CDFSyncClient.HTTPRequest.Method, _ path: String, headers: [(String, String)] = [],
                 body: String? = nil) async throws -> (status: Int, headers: [String: String], body: String) {
        let url = base + path
        return try await blocking {
            var options = TransportOptions()
            options.requestTimeout = 60
            let (head, bytes) = try CurlTransport(options: options).performCollecting(
                CDFSyncClient.HTTPRequest(method: method, url: url, headers: headers, body: body.map { Array($0.utf8) }))
            return (head.status, head.headers, String(decoding: bytes, as: UTF8.self))
        }
    }

    func json(_ path: String, headers: [(String, String)] = []) async throws -> [String: Any] {
        let r = try await request(.get, path, headers: headers)
        #expect(r.status == 200, "\(path): \(r.status) \(r.body)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any])
    }

    /// Waits (bounded) until the pipeline's last outcome in this process is set after `after` runs.
    func waitForRunEnd(_ pipeline: String, runsBefore: Int = 0, deadline: Double = 120) async throws -> [String: Any] {
        let end = Date().addingTimeInterval(deadline)
        while Date() < end {
            let p = try await json("/api/pipelines/\(pipeline)")
            if let outcome = p["last_outcome"] as? [String: Any], p["running"] as? Bool == false,
                p["queued"] as? Bool == false, (outcome["run_id"] as? Int ?? 0) > runsBefore
            {
                return p
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("pipeline \(pipeline) did not finish a run within \(deadline) s")
        return [:]
    }
}

/// The value of a sample in a Prometheus text exposition: `name{labels} value` (labels in any order).
func metric(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let (head, value) = line.lastIndex(of: " ").map { (line[..<$0], line[line.index(after: $0)...]) } ?? (line, "")
        let metricName = head.prefix { $0 != "{" }
        guard metricName == name else { continue }
        var found: [String: String] = [:]
        if let open = head.firstIndex(of: "{"), head.hasSuffix("}") {
            let inner = head[head.index(after: open)..<head.index(before: head.endIndex)]
            for pair in inner.split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                found[String(kv[0])] = String(kv[1].dropFirst().dropLast())
            }
        }
        if found == labels { return Double(value) }
    }
    return nil
}
