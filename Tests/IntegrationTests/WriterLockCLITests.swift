import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// Two `cdfsync` processes on one state directory: the second writer is refused before it opens or sends anything,
/// naming the first; commands that only read run beside it and see its run as `running`; a killed writer leaves no
/// stale lock, and its run reads `interrupted` (and is recorded so by the next run), never `succeeded`.
@Suite("CLI: one writer per state directory")
struct WriterLockCLITests {
    static let args = ["sync", "--table", "main.research.participants", "--key", "participant_id"]

    /// Starts the real binary (as `runCLI` would) without waiting for it; its output goes to `log`.
    /// (`schedule` takes its output directories from the pipelines: `outputDir: false`.)
    func start(_ args: [String], port: Int, dir: TempDir, log: String, outputDir: Bool = true) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try BuiltProduct.cdfsync.path)
        p.arguments = args + ["--host", "http://127.0.0.1:\(port)", "--warehouse-id", "8a1c2f3d4e5b6a70",
                              "--state-dir", dir.sub("state")] + (outputDir ? ["--output-dir", dir.sub("out")] : [])
        p.environment = ["DATABRICKS_TOKEN": "dapi-demo-token", "PATH": "/usr/bin:/bin"]
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return p
    }

    /// Runs a command that only reads the state (no warehouse options).
    func read(_ args: [String], _ dir: TempDir) throws -> (status: Int32, output: String) {
        try runProcess(try BuiltProduct.cdfsync.path, args + ["--state-dir", dir.sub("state")], environment: ["PATH": "/usr/bin:/bin"])
    }

    /// Waits until process `pid` holds the writer lock of `dir`'s state.
    func waitForLock(_ dir: TempDir, pid: Int32) -> Bool {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if WriterLock.holder(of: dir.sub("state"))?.pid == pid { return true }
            usleep(20_000)
        }
        return false
    }

    @Test func aSecondSyncIsRefusedNamingTheFirstAndReadersRunBesideIt() throws {
        // Every statement stays RUNNING for 2 s, so the first sync holds the store for several seconds.
        let sim = try RunningSimulator(configuration: .init(executionDelay: 2))
        let dir = TempDir("writer-lock")
        let first = try start(Self.args, port: sim.port, dir: dir, log: dir.sub("first.log"))
        defer { if first.isRunning { first.terminate() } }
        #expect(waitForLock(dir, pid: first.processIdentifier))

        let second = try runCLI(Self.args, port: sim.port, dir: dir)
        #expect(second.status == 1, "\(second.output)")
        #expect(second.output.contains("state directory \(dir.sub("state")) is in use by another process"), "\(second.output)")
        #expect(second.output.contains("pid \(first.processIdentifier)"), "the holder is named: \(second.output)")
        #expect(second.output.contains("`cdfsync sync`"), "\(second.output)")
        #expect(second.output.contains("another --state-dir"), "what to do: \(second.output)")
        #expect(first.isRunning, "the refusal came before the first run ended, without waiting for it")

        // Readers take no lock: status and runs work while the sync runs (they show its run in progress).
        let status = try read(["status"], dir)
        #expect(status.status == 0, "\(status.output)")
        #expect(status.output.contains("participants"), "\(status.output)")
        #expect(status.output.contains("last run 1 running at") && status.output.contains("(pid \(first.processIdentifier))"),
            "a run in progress says so, not succeeded: \(status.output)")
        #expect(status.output.contains("writer     pid \(first.processIdentifier) `cdfsync sync` since "), "\(status.output)")
        let runs = try read(["runs"], dir)
        #expect(runs.status == 0, "\(runs.output)")
        #expect(runs.output.contains("  in progress  running"), "\(runs.output)")
        #expect(first.isRunning, "the readers ran while the first run held the store")

        first.waitUntilExit()
        let firstOutput = try String(contentsOfFile: dir.sub("first.log"), encoding: .utf8)
        #expect(first.terminationStatus == 0, "the first run is undisturbed: \(firstOutput)")
        #expect(firstOutput.contains("inserted       355"), "\(firstOutput)")
        #expect(WriterLock.holder(of: dir.sub("state")) == nil, "released when the first run ended")
        #expect(try read(["status"], dir).output.contains("writer     none (no run in progress)"))

        let after = try runCLI(Self.args, port: sim.port, dir: dir)
        #expect(after.status == 0, "\(after.output)")
        #expect(after.output.contains("no new commits"), "\(after.output)")
        let listed = try read(["runs", "--json"], dir)
        let object = try JSONSerialization.jsonObject(with: Data(listed.output.utf8)) as? [String: Any]
        let records = try #require(object?["runs"] as? [[String: Any]], "\(listed.output)")
        #expect(records.count == 2, "the refused attempt never started, so it has no run record: \(listed.output)")
        #expect(records.allSatisfy { $0["status"] as? String == "succeeded" }, "\(listed.output)")
    }

    @Test func aKilledSyncLeavesNoLockAndTheNextRunFinishesItsWork() throws {
        let sim = try RunningSimulator(configuration: .init(executionDelay: 2))
        let dir = TempDir("writer-lock-kill")
        let first = try start(Self.args, port: sim.port, dir: dir, log: dir.sub("first.log"))
        #expect(waitForLock(dir, pid: first.processIdentifier))
        // Its run record exists from the start, as `running`.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !(try read(["runs"], dir).output.contains("running")) { usleep(50_000) }
        let pid = first.processIdentifier
        kill(pid, SIGKILL)
        first.waitUntilExit()
        #expect(WriterLock.holder(of: dir.sub("state")) == nil, "the kernel released the killed holder's lock")

        // Readers show a `running` record of a process that no longer holds the store as interrupted.
        let seen = try read(["runs", "--json"], dir)
        #expect(seen.output.contains(#""status":"interrupted""#), "\(seen.output)")
        #expect(seen.output.contains("process \(pid) ended before the run finished"), "\(seen.output)")
        let status = try read(["status"], dir)
        #expect(status.output.contains("last run 1 interrupted"), "\(status.output)")

        let next = try runCLI(Self.args, port: sim.port, dir: dir)
        #expect(next.status == 0, "\(next.output)")
        #expect(next.output.contains("inserted       355"), "\(next.output)")

        // The next run rewrote the record itself: it says interrupted in the store, not only when read.
        let store = try PanelStore(directory: dir.sub("state"), access: .reader)
        let stored = String(decoding: try #require(try store.run(id: 1)), as: UTF8.self)
        #expect(stored.contains(#""status":"interrupted""#) && stored.contains("process \(pid) ended"), "\(stored)")
        #expect(String(decoding: try #require(try store.run(id: 2)), as: UTF8.self).contains(#""status":"succeeded""#))
    }

    /// Holds `dir`'s writer lock from another process (util-linux flock(1), which then becomes `sleep`).
    func holdLock(_ dir: TempDir) throws -> Process {
        try FileManager.default.createDirectory(atPath: dir.sub("state"), withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", "exec 9>>\"$0\" && flock 9 && exec sleep 120", dir.sub("state") + "/" + WriterLock.fileName]
        try p.run()
        let deadline = Date().addingTimeInterval(10)
        while WriterLock.holder(of: dir.sub("state")) == nil && Date() < deadline { usleep(20_000) }
        return p
    }

    /// A scheduled run that finds the state directory held waits and tries again (a daily pipeline would otherwise
    /// skip a day); `schedule --once`, for cron, fails instead and says why.
    @Test func aScheduledRunWaitsForTheStateDirectoryAndOnceFails() throws {
        let sim = try RunningSimulator()
        let dir = TempDir("writer-lock-schedule")
        let file = try ScheduleOnceCLITests().pipeline(dir, name: "panel", source: "main.research.participants")
        let holder = try holdLock(dir)
        defer { if holder.isRunning { holder.terminate() } }

        let once = try runProcess(try BuiltProduct.cdfsync.path,
            ["schedule", file, "--once", "--host", sim.baseURL, "--state-dir", dir.sub("state")],
            environment: ["DATABRICKS_TOKEN": "dapi-demo-token", "PATH": "/usr/bin:/bin"])
        #expect(once.status == 1, "\(once.output)")
        #expect(once.output.contains("is in use by another process") && once.output.contains("1 of 1 pipeline run(s) failed"),
            "\(once.output)")

        let log = dir.sub("schedule.log")
        let daemon = try start(["schedule", file, "--now", "--busy-retry", "1"], port: sim.port, dir: dir, log: log,
            outputDir: false)
        defer { if daemon.isRunning { daemon.terminate() } }
        func output() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        var deadline = Date().addingTimeInterval(30)
        while output().components(separatedBy: "waiting:").count < 3 && Date() < deadline { usleep(50_000) }
        #expect(output().contains("waiting: state directory \(dir.sub("state")) is in use by another process"), "\(output())")
        #expect(output().contains("trying again in 1 s") && !output().contains("failed"), "\(output())")

        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        deadline = Date().addingTimeInterval(30)
        while !output().contains("inserted") && !output().contains("failed") && Date() < deadline { usleep(50_000) }
        #expect(output().contains("delivered      364 change(s)"), "the run went ahead once the store was free: \(output())")
        daemon.terminate()
        daemon.waitUntilExit()
        #expect(output().hasSuffix("stopped\n"), "SIGTERM stops the daemon: \(output())")
    }

    /// A new state directory pointed at an earlier one's output directory (e.g. after resetting the state) is refused
    /// before it reads anything, and the files consumers may not have taken yet stay exactly as they were.
    @Test func aNewStateDirectoryIsRefusedAnotherStoresOutputDirectory() throws {
        let sim = try RunningSimulator()
        let dir = TempDir("output-owner")
        #expect(try runCLI(Self.args, port: sim.port, dir: dir).status == 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.sub("out")).sorted()
        #expect(files.contains(PanelStore.ownerFileName) && files.contains { $0.hasPrefix("changes-") }, "\(files)")
        func contents() throws -> [String: Data] {
            var result: [String: Data] = [:]
            for f in files { result[f] = try Data(contentsOf: URL(fileURLWithPath: dir.sub("out/\(f)"))) }
            return result
        }
        let before = try contents()

        let refused = try runProcess(try BuiltProduct.cdfsync.path,
            Self.args + ["--host", sim.baseURL, "--warehouse-id", "8a1c2f3d4e5b6a70", "--state-dir", dir.sub("state2"),
                         "--output-dir", dir.sub("out")],
            environment: ["DATABRICKS_TOKEN": "dapi-demo-token", "PATH": "/usr/bin:/bin"])
        #expect(refused.status == 1, "\(refused.output)")
        #expect(refused.output.contains("delivery directory \(dir.sub("out")) belongs to another state store (state directory \(dir.sub("state"))"),
            "\(refused.output)")
        #expect(refused.output.contains("checkpoint unchanged"), "failed before reading anything: \(refused.output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.sub("out")).sorted() == files)
        #expect(try contents() == before, "the first store's files are untouched")
        let panel = try PanelStore(directory: dir.sub("state2"), access: .reader)
        #expect(try panel.count() == 0, "nothing was read or applied")
    }
}
