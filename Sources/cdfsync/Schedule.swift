import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

extension CDFSyncCommand {
    struct Schedule: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run pipelines on their schedules (15m, hourly, daily) until interrupted.",
            discussion: """
                Each pipeline runs at the next boundary of its schedule (e.g. :00, :15, :30, :45 for 15m) and then \
                every period; a run that fails is logged and retried at the next boundary. A run whose state \
                directory another cdfsync process holds (a manual sync or replay) waits, trying again every \
                --busy-retry seconds (with --once it fails instead). \
                SIGINT or SIGTERM cancels the running statement and stops.
                """)

        @Argument(help: "Pipeline YAML files; each must have a `schedule`.")
        var pipelines: [String]

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var state: StateOptions

        @Flag(help: "Run every pipeline once now, then exit.")
        var once = false

        @Flag(help: "Run every pipeline now, then on its schedule (without it, the first run is at the next boundary).")
        var now = false

        @Option(help: "Seconds a run waits before trying again when another cdfsync process holds the state directory.")
        var busyRetry: Double = 30

        @Flag(help: "Print each run's record as one JSON line (NDJSON) on stdout as the run ends; other lines go to stderr.")
        var json = false

        @OptionGroup(title: "Logging") var logging: LoggingOptions

        func validate() throws {
            guard ArgumentChecks.enabled else { return }
            guard busyRetry > 0, busyRetry.isFinite else {
                throw ValidationError("--busy-retry must be a positive number of seconds, e.g. 30")
            }
        }

        func run() throws {
            try reportingErrors {
                var entries: [(path: String, spec: Pipeline, next: Date)] = []
                for path in pipelines {
                    let spec = try PipelineLoader.load(path: path)
                    guard let s = spec.schedule else {
                        throw SyncError("\(path) has no schedule", remedy: "Add `schedule: 15m | hourly | daily` to it.")
                    }
                    entries.append((path, spec, once || now ? Date() : ScheduleClock.nextBoundary(after: Date(), period: s.seconds)))
                }
                Interrupts.install()
                var failed: [String] = []
                var skipped: [String] = []
                let retry = once ? "" : "; retrying at the next boundary"
                while !Interrupts.requested {
                    let now = Date()
                    for i in entries.indices where entries[i].next <= now {
                        let e = entries[i]
                        say("\(ISO8601DateFormatter().string(from: now)) running \(e.spec.name)")
                        do {
                            let (sync, _) = try makeSync(pipelinePath: e.path, table: nil, key: "", columns: nil, outputDir: nil,
                                connection: connection, state: state) { _, _ in }
                            let summary = try sync.run()
                            if json { JSONOutput.emitLine(try summary.json()) } else { say(summary.render()) }
                        } catch let busy as StorageError where ScheduleClock.isBusy(busy) && !once {
                            // Another process (a manual sync, a replay) holds the state directory: this run has not
                            // started, so it waits a little instead of skipping a whole period.
                            say("  waiting: \(busy.message.prefix { $0 != ";" }); trying again in \(Int(busyRetry)) s")
                            entries[i].next = ScheduleClock.next(after: .busy, at: Date(), schedule: e.spec.schedule!,
                                busyRetry: busyRetry)
                            continue
                        } catch let removed as ConnectionRemoved {
                            // The others go on; this one is tried again at its next boundary (the connection may be
                            // added again).
                            if !skipped.contains(e.spec.name) { skipped.append(e.spec.name) }
                            say("  skipped: connection \(removed.name) was removed (\(removed.removedAt))\(retry)")
                        } catch let f as SyncFailure {
                            failed.append(e.spec.name)
                            if json, let record = try? f.summary.json() { JSONOutput.emitLine(record) }
                            say("  failed: \(f.underlying) (run \(f.summary.runID) recorded)\(retry)")
                        } catch {
                            failed.append(e.spec.name)
                            say("  failed: \(error)\(retry)")
                        }
                        entries[i].next = ScheduleClock.next(after: .ran, at: Date(), schedule: e.spec.schedule!,
                            busyRetry: busyRetry)
                    }
                    if once {
                        // For cron and CI: the exit status says whether every pipeline's run succeeded.
                        if !skipped.isEmpty {
                            FileHandle.standardError.write(Data(
                                "error: \(skipped.count) of \(entries.count) pipeline(s) skipped, their connection was removed: \(skipped.joined(separator: ", "))\n".utf8))
                        }
                        guard failed.isEmpty else {
                            FileHandle.standardError.write(Data(
                                "error: \(failed.count) of \(entries.count) pipeline run(s) failed: \(failed.joined(separator: ", "))\n".utf8))
                            throw ExitStatus.failure
                        }
                        if !skipped.isEmpty { throw ExitCode.failure }
                        return
                    }
                    let next = entries.map(\.next).min()!
                    let due = entries.filter { $0.next == next }.map(\.spec.name).joined(separator: ", ")
                    say("next run \(ISO8601DateFormatter().string(from: next)): \(due)")
                    while !Interrupts.requested && Date() < next { Thread.sleep(forTimeInterval: 0.5) }
                }
                say("stopped")
            }
        }

        /// Prints a line and flushes it: a daemon's output usually goes to a file or a pipe (a log), which stdio
        /// would otherwise only write out 4 KB at a time.
        /// With --json, stdout carries only the records: the line goes to stderr.
        func say(_ line: String) {
            if json {
                Console.standardError.line(line)
                return
            }
            print(line)
            fflush(nil)
        }
    }
}
