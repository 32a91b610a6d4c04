import CDFSyncCore
import CDFSyncEngine
import CDFSyncTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServiceLifecycle
import Testing

@testable import CDFSyncService

/// The routes on HummingbirdTesting's router (no socket): probes, the pipeline list, triggers, run records.
@Suite("serve: routes")
struct RouteTests {
    func decode(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any])
    }

    @Test func probesSayLiveAndWhenReady() async throws {
        let f = try ServeFixture()
        let app = f.server.makeApplication()
        try await app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.status == .ok)
                #expect(String(buffer: r.body) == #"{"status":"ok"}"#)
            }
            // Not ready until the scheduler has read the pipelines.
            try await client.execute(uri: "/readyz", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(String(buffer: r.body).contains("starting"))
            }
            f.server.start()
            try await client.execute(uri: "/readyz", method: .get) { r in #expect(r.status == .ok) }
            f.server.beginStopping()
            try await client.execute(uri: "/readyz", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(String(buffer: r.body).contains("stopping"))
            }
            // Stopping: a trigger is refused, nothing starts.
            try await client.execute(uri: "/api/pipelines/panel/run", method: .post) { r in
                #expect(r.status == .serviceUnavailable)
            }
        }
    }

    @Test func everyKeyIsWrittenAndAnAbsentValueIsNull() throws {
        let none = StatusView.Writer(pid: nil, command: nil, since: nil)
        #expect(String(decoding: JSON.encode(none), as: UTF8.self) == #"{"command":null,"pid":null,"since":null}"#)
        let some = StatusView.Writer(pid: 7, command: "cdfsync sync", since: nil)
        #expect(String(decoding: JSON.encode(some), as: UTF8.self) == #"{"command":"cdfsync sync","pid":7,"since":null}"#)
    }

    @Test func aPortInUseIsExplainedWithTheAddressAndWhatToDo() async throws {
        let first = try await LiveServer(try ServeFixture().server)
        let second = try ServeFixture { $0.port = first.port }
        let error = await #expect(throws: SyncError.self) {
            try await second.server.explainingListenErrors {
                try await second.server.makeServiceGroup(signals: []) { _ in }.run()
            }
        }
        #expect(error?.message == "cannot listen on 127.0.0.1:\(first.port): Address already in use (another process "
            + "listens on port \(first.port))")
        #expect(error?.remedy.contains("choose another --port") == true)
        try await first.stop()
    }

    @Test func pipelinesListShowsEveryFileAndWhyABrokenOneDoesNotLoad() async throws {
        let dir = TempDir("serve-list")
        let f = try ServeFixture(pipelines: [
            "panel.yaml": pipelineYAML(dir: dir, schedule: "daily"),
            "broken.yaml": "name: broken\nsource: main.research.participants\nshedule: daily\n",
        ])
        let app = f.server.makeApplication()
        f.server.start()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/pipelines", method: .get) { r in
                #expect(r.status == .ok)
                let list = try #require(try decode(r)["pipelines"] as? [[String: Any]])
                #expect(list.count == 2)
                let broken = try #require(list.first { $0["name"] as? String == "broken" })
                #expect((broken["error"] as? String)?.contains("shedule") == true, "\(broken)")
                let panel = try #require(list.first { $0["name"] as? String == "panel" })
                #expect(panel["error"] is NSNull)
                #expect(panel["schedule"] as? String == "daily")
                #expect(panel["running"] as? Bool == false)
                #expect(panel["checkpoint"] is NSNull, "never synced")
                #expect(panel["last_run"] is NSNull)
                #expect(panel["warehouse"] is NSNull, "not looked at before a run")
                // The next run is the next midnight UTC.
                let next = try #require(panel["next_run_at"] as? String)
                let date = try #require(ISO8601DateFormatter().date(from: next))
                #expect(Int(date.timeIntervalSince1970) % 86_400 == 0 && date > Date(), "\(next)")
            }
            try await client.execute(uri: "/api/pipelines/broken/run", method: .post) { r in
                #expect(r.status == .unprocessableContent)
                let message = try decode(r)["error"] as? String
                #expect(message?.isEmpty == false)
            }
            try await client.execute(uri: "/api/pipelines/nope/run", method: .post) { r in
                #expect(r.status == .notFound)
                let body = try decode(r)
                #expect((body["error"] as? String)?.contains("no pipeline named nope") == true)
                #expect(body["remedy"] is String)
            }
            try await client.execute(uri: "/api/pipelines/nope", method: .get) { r in #expect(r.status == .notFound) }
            try await client.execute(uri: "/api/pipelines/panel/runs", method: .get) { r in
                #expect(r.status == .ok)
                #expect(String(buffer: r.body) == #"{"runs":[]}"#)
            }
            try await client.execute(uri: "/api/pipelines/panel/runs/1", method: .get) { r in
                #expect(r.status == .notFound)
            }
            try await client.execute(uri: "/api/status", method: .get) { r in
                #expect(r.status == .ok)
                let status = try decode(r)
                #expect(status["ready"] as? Bool == true)
                let dirs = try #require(status["state_dirs"] as? [[String: Any]])
                // The pipeline's state directory and the default one: no run has created either store yet.
                #expect(dirs.map { $0["path"] as? String } == [f.dir.sub("state"), dir.sub("state")].sorted(), "\(dirs)")
                #expect(dirs.allSatisfy { $0["exists"] as? Bool == false && $0["participants"] is NSNull })
            }
        }
    }

    /// A hand edit is picked up: a schedule added to the file gives the pipeline a next run; a new file appears.
    @Test func handEditsArePickedUp() async throws {
        let dir = TempDir("serve-edit")
        let f = try ServeFixture(pipelines: ["panel.yaml": pipelineYAML(dir: dir)])
        f.server.start()
        #expect(f.server.state.get("panel").nextRun == nil, "no schedule: runs on trigger only")
        // A different size, so the change is seen even within the file system's time resolution.
        try (pipelineYAML(dir: dir, schedule: "15m") + "\n").write(toFile: f.dir.sub("pipelines/panel.yaml"),
            atomically: true, encoding: .utf8)
        try pipelineYAML(name: "second", dir: dir).write(toFile: f.dir.sub("pipelines/second.yaml"),
            atomically: true, encoding: .utf8)
        f.server.tick()
        let next = try #require(f.server.state.get("panel").nextRun)
        #expect(Int(next.timeIntervalSince1970) % 900 == 0 && next > Date())
        let views = try f.server.pipelineViews()
        #expect(views.map(\.name) == ["panel", "second"])
        #expect(views[0].schedule == "15m")
    }

    @Test func twoFilesWithOneNameTheSecondIsAnError() throws {
        let dir = TempDir("serve-dup")
        let f = try ServeFixture(pipelines: [
            "a.yaml": pipelineYAML(dir: dir), "b.yaml": pipelineYAML(dir: dir),
        ])
        let entries = f.server.catalog.refresh()
        #expect(entries.count == 2)
        #expect(entries[0].error == nil)
        #expect(entries[1].error?.contains("is also the name of") == true, "\(entries[1].error ?? "")")
    }
}
