import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// The progress display of the built `cdfsync`: a live line redrawn in place on a terminal (driven in tmux, read
/// with capture-pane), one summary line when stderr is a pipe, nothing with --no-progress.
@Suite("CLI: progress")
struct ProgressCLITests {
    static let table = "main.research.synthetic_panel"
    static let rows = 120_000

    /// A simulator whose chunk downloads are slowed down (250 ms each, 5,000 rows a chunk): a sync of the
    /// synthetic table takes some seconds, long enough to be watched.
    static func slowSimulator() throws -> RunningSimulator {
        var configuration = Simulator.Configuration()
        configuration.rowsPerExternalChunk = 5_000
        let sim = try RunningSimulator(configuration: configuration)
        try sim.sim.addSyntheticTable(name: table, rows: rows, seed: 7)
        _ = sim.sim.addFault(Fault(match: .init(method: "GET", pathPrefix: "/_blob/"), count: nil, kind: .slow,
            delayMillis: 250))
        return sim
    }

    static func syncArguments(_ sim: RunningSimulator, _ dir: TempDir) -> [String] {
        ["sync", "--table", table, "--key", "participant_id", "--disposition", "external-links",
         "--host", sim.baseURL, "--warehouse-id", "8a1c2f3d4e5b6a70",
         "--state-dir", dir.sub("state"), "--output-dir", dir.sub("out")]
    }

    /// The live line: phase and part, rows read of those announced with the percentage, rate, ETA.
    static var liveLine: Regex<Substring> { #/reading v\d+.{1,3}v\d+  [\d,]+/120,000 rows \(\d{1,3}%\)  [\d,]+ rows/s  ETA \d+:\d\d/# }
    /// The summary line left at the end.
    static var summaryLine: Regex<Substring> { #/^sync: 120,000 rows read, 120,000 applied in \d+\.\d s \([\d,]+ rows/s\)$/# }

    @Test func onATerminalTheLineIsRedrawnInPlaceAndLeftAsTheSummary() throws {
        let tmux = "/usr/bin/tmux"
        try #require(FileManager.default.isExecutableFile(atPath: tmux), "tmux is not installed (make deps installs it)")
        let sim = try Self.slowSimulator()
        let dir = TempDir("progress-tty")
        let socket = dir.sub("tmux.sock")
        let quoted = try ([BuiltProduct.cdfsync.path] + Self.syncArguments(sim, dir)).map { "'\($0)'" }
            .joined(separator: " ")
        // The first row of a new pane can be lost to capture-pane (tmux 3.3 sizes the window after the command
        // started): a line of its own goes there.
        try """
            export PATH=/usr/bin:/bin HOME='\(dir.path)' DATABRICKS_TOKEN=dapi-demo-token LANG=C.UTF-8
            echo '$ cdfsync sync'
            \(quoted)
            echo "CDFSYNC-EXIT=$?"
            """.write(toFile: dir.sub("run.sh"), atomically: true, encoding: .utf8)
        // The pane stays, with its screen, after the sync ends (no process left in it).
        try "set -g remain-on-exit on\n".write(toFile: dir.sub("tmux.conf"), atomically: true, encoding: .utf8)
        // The tmux server forks off the client and lives on: started through a shell that first closes every
        // descriptor it inherited, or it would hold this process's pipes (and Foundation's watch on the client)
        // open until it exits.
        let started = try ChildProcess.run("/bin/bash", ["-c", """
            for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
            exec "$@" </dev/null >/dev/null 2>&1
            """, "bash", tmux, "-u", "-f", dir.sub("tmux.conf"), "-S", socket, "new-session", "-d", "-s", "progress",
            "-x", "150", "-y", "40", "bash " + dir.sub("run.sh")], discardOutput: true)
        try #require(started.succeeded, "tmux new-session failed (exit \(started.status))")
        // The server inherits this process's blocked signals, so it is ended by kill-server, and then SIGKILL.
        let server = try ChildProcess.run(tmux, ["-S", socket, "display-message", "-p", "#{pid}"]).stdout
        defer {
            _ = try? ChildProcess.run(tmux, ["-S", socket, "kill-server"], discardOutput: true)
            if let pid = Int32(server.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1 { kill(pid, SIGKILL) }
            withExtendedLifetime(dir) {}  // its socket is in `dir`, which must outlive the kill
        }
        func screen() throws -> String {
            try ChildProcess.run(tmux, ["-u", "-S", socket, "capture-pane", "-p", "-t", "progress"]).stdout
        }

        // The live line, while the run reads.
        var live: String?
        var last = ""
        let limit = Date().addingTimeInterval(180)
        while live == nil && Date() < limit {
            last = try screen()
            live = last.split(separator: "\n").map(String.init).first { $0.contains("ETA") }
            if last.contains("CDFSYNC-EXIT=") { break }
            usleep(100_000)
        }
        let line = try #require(live, "no live progress line was seen; the screen:\n\(last)")
        #expect(line.contains(Self.liveLine), "\(line)")

        // The end: the same line, now the summary, stays on the screen above the exit status.
        while !last.contains("CDFSYNC-EXIT=") && Date() < limit {
            usleep(100_000)
            last = try screen()
        }
        let lines = last.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.contains("CDFSYNC-EXIT=0"), "\(last)")
        #expect(lines.contains { $0.wholeMatch(of: Self.summaryLine) != nil }, "\(last)")
        #expect(!lines.contains { $0.contains("ETA") }, "the live line is replaced, not left beside the summary:\n\(last)")
        #expect(lines.contains { $0.hasPrefix("sync of \(Self.table)") }, "the run's own report follows: \(last)")
    }

    @Test func onAPipeOneSummaryLineAndNoRedraws() throws {
        let sim = try Self.slowSimulator()
        sim.sim.clearFaults()
        let dir = TempDir("progress-pipe")
        let env = ["PATH": "/usr/bin:/bin", "HOME": dir.path, "DATABRICKS_TOKEN": "dapi-demo-token"]
        let r = try ChildProcess.run(try BuiltProduct.cdfsync.path, Self.syncArguments(sim, dir), environment: env,
            mergeOutput: false)
        #expect(r.succeeded, "\(r.output)")
        let summaries = r.stderr.split(separator: "\n").filter { $0.hasPrefix("sync: ") }
        #expect(summaries.count == 1 && summaries[0].wholeMatch(of: Self.summaryLine) != nil, "\(r.stderr)")
        #expect(!r.stderr.contains("\r") && !r.stderr.contains("\u{1B}["), "no redraws on a pipe: \(r.stderr.debugDescription)")
        #expect(!r.stdout.contains("sync: ") && !r.stdout.contains("ETA"), "progress goes to stderr only")

        let quiet = TempDir("progress-off")
        let off = try ChildProcess.run(try BuiltProduct.cdfsync.path, Self.syncArguments(sim, quiet) + ["--no-progress"],
            environment: env, mergeOutput: false)
        #expect(off.succeeded && !off.stderr.contains("rows/s") && !off.stderr.contains("sync: "), "\(off.stderr)")

        let forced = TempDir("progress-forced")
        let on = try ChildProcess.run(try BuiltProduct.cdfsync.path, Self.syncArguments(sim, forced) + ["--progress"],
            environment: env, mergeOutput: false)
        #expect(on.succeeded, "\(on.output)")
        #expect(on.stderr.contains("\r\u{1B}[K"), "--progress draws the live line on a pipe too")
        #expect(on.stderr.split(separator: "\n").contains { $0.contains("sync: 120,000 rows read") }, "\(on.stderr)")
    }

    @Test func anExportShowsRecordsWritten() throws {
        let sim = try Self.slowSimulator()
        sim.sim.clearFaults()
        let dir = TempDir("progress-export")
        let env = ["PATH": "/usr/bin:/bin", "HOME": dir.path, "DATABRICKS_TOKEN": "dapi-demo-token"]
        let synced = try ChildProcess.run(try BuiltProduct.cdfsync.path, Self.syncArguments(sim, dir) + ["--no-progress"],
            environment: env)
        try #require(synced.succeeded, "\(synced.output)")
        let export = try ChildProcess.run(try BuiltProduct.cdfsync.path,
            ["panel", "export", "--state-dir", dir.sub("state")], environment: env, mergeOutput: false)
        #expect(export.succeeded)
        #expect(export.stdout.split(separator: "\n").count == Self.rows)
        #expect(export.stderr.contains(#/export: 120,000 records written in \d+\.\d s/#), "\(export.stderr)")
    }
}

/// Exit statuses: 0, 1 for a failed run, 64 for a usage error, 130 for SIGINT and 143 for SIGTERM (the running
/// statement cancelled, the run recorded).
@Suite("CLI: exit status")
struct ExitStatusCLITests {
    /// A sync whose table_changes statement stays queued until it is cancelled; returns it once it reads.
    static func queuedSync(_ sim: RunningSimulator, _ dir: TempDir) throws -> RunningChild {
        var queued = Fault(match: .init(statementContains: "table_changes"), count: nil, kind: .queue)
        queued.polls = 100_000
        _ = sim.sim.addFault(queued)
        return try RunningChild(try BuiltProduct.cdfsync.path,
            ["sync", "--table", "main.research.participants", "--key", "participant_id", "--progress",
             "--host", sim.baseURL, "--warehouse-id", "8a1c2f3d4e5b6a70",
             "--state-dir", dir.sub("state"), "--output-dir", dir.sub("out")],
            environment: ["PATH": "/usr/bin:/bin", "HOME": dir.path, "DATABRICKS_TOKEN": "dapi-demo-token"])
    }

    @Test(arguments: [(SIGINT, Int32(130), "SIGINT"), (SIGTERM, Int32(143), "SIGTERM")])
    func aSignalStopsTheRunWith128PlusItsNumber(signal: Int32, status: Int32, name: String) throws {
        let sim = try RunningSimulator()
        let dir = TempDir("exit-signal")
        let child = try Self.queuedSync(sim, dir)
        #expect(child.waitForOutput(containing: "reading v"), "\(child.output)")
        child.send(signal)
        let r = child.wait()
        #expect(r.exited && r.status == status, "status \(r.status): \(r.output)")
        #expect(r.output.contains("stopped by \(name)") && r.output.contains("cancelled"), "\(r.output)")
        let runs = try runBinary(["runs", "--state-dir", dir.sub("state")], in: dir.path, environment: ["PATH": "/usr/bin:/bin"])
        #expect(runs.output.contains("failed"), "the run is recorded as failed: \(runs.output)")
    }

    @Test func usageIs64AndAFailedRunIs1() throws {
        let dir = TempDir("exit-codes")
        let env = ["PATH": "/usr/bin:/bin", "HOME": dir.path]
        #expect(try runBinary(["sync", "--batch-size", "x", "--table", "t"], in: dir.path, environment: env).status == 64)
        #expect(try runBinary(["no-such-command"], in: dir.path, environment: env).status == 64)
        #expect(try runBinary(["--help"], in: dir.path, environment: env).status == 0)
        let sim = try RunningSimulator()
        let failed = try runCLI(["sync", "--table", "main.research.no_such_table", "--key", "participant_id"],
            port: sim.port, dir: TempDir())
        #expect(failed.status == 1, "\(failed.output)")
    }
}

/// The audit record names the OS user when `$USER` is not set (cron, systemd, containers).
@Suite("Run record: user")
struct RunRecordUserTests {
    @Test func withoutUSERTheRecordNamesThePasswordDatabaseUser() throws {
        let sim = try RunningSimulator()
        let dir = TempDir("record-user")
        let r = try runCLI(["sync", "--table", "main.research.participants", "--key", "participant_id",
                            "--summary-json", dir.sub("run.json")], port: sim.port, dir: dir)
        try #require(r.status == 0, "\(r.output)")
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.sub("run.json"))))
            as? [String: Any]
        let expected = try #require(getpwuid(geteuid())).pointee.pw_name.map { String(cString: $0) }
        #expect(record?["user"] as? String == expected, "\(record?["user"] ?? "nil")")
        #expect(record?["user"] as? String != "unknown")
    }
}
