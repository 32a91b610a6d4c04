import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import Foundation
import Logging

/// `--log-level`, `--quiet` and `--log-format` of the commands that talk to a warehouse or run syncs
/// (docs/cli.md, "Logging"). Every command logs through swift-log; these choose how much, and how it looks.
struct LoggingOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "How much to log on stderr: trace, debug, info, notice, warning, error or critical (env CDFSYNC_LOG_LEVEL; default notice).",
        discussion: "notice: a warehouse starting, a statement queued; info: what a run reads and applies; debug: "
            + "each statement; trace: each HTTP request (method, path, status, size, time: never a header, a "
            + "token or a presigned URL's query).",
        valueName: "level"))
    var logLevel: LogLevel?

    @Flag(help: "Log only errors (--log-level error), and no progress unless --progress.")
    var quiet = false

    @Option(help: ArgumentHelp("text (lines for people) or json (one JSON object per line).", valueName: "format"))
    var logFormat: LogFormat = .text

    func validate() throws {
        guard ArgumentChecks.enabled else { return }
        if quiet, let logLevel {
            throw ValidationError("give --quiet or --log-level \(logLevel.rawValue), not both")
        }
    }

    /// The level these options and the environment ask for: --quiet, else --log-level, else `CDFSYNC_LOG_LEVEL`,
    /// else `fallback`.
    /// - Throws: `ValidationError` (exit 64) for a `CDFSYNC_LOG_LEVEL` that is not a level.
    func level(environment: [String: String], fallback: Logger.Level = .notice) throws -> Logger.Level {
        if quiet { return .error }
        if let logLevel { return logLevel.level }
        return try LogSetup.environmentLevel(environment) ?? fallback
    }
}

/// A level as `--log-level` and `CDFSYNC_LOG_LEVEL` spell it.
enum LogLevel: String, ExpressibleByArgument, CaseIterable {
    case trace, debug, info, notice, warning, error, critical

    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

/// `--log-format`.
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    /// `notice: warehouse starting (4s)` on a terminal; with the time, the logger's label and the metadata
    /// otherwise.
    case text
    /// One JSON object per line: `timestamp`, `level`, `label`, `message`, `metadata`.
    case json
}

/// A command that takes ``LoggingOptions``: `main()` sets logging up from them before the command runs.
protocol LoggingCommand {
    var logging: LoggingOptions { get }
}

/// Sets up swift-log once per process (``CDFSyncCommand/main()``), before any logger is made.
enum LogSetup {
    /// Bootstraps the logging system for `command`: its ``LoggingOptions`` when it has them, else the environment.
    static func bootstrap(for command: any ParsableCommand, environment: [String: String]) throws {
        var level = Logger.Level.notice
        var format = LogFormat.text
        if let c = command as? any LoggingCommand {
            level = try c.logging.level(environment: environment, fallback: fallbackLevel(command))
            format = c.logging.logFormat
        } else if let fromEnvironment = try environmentLevel(environment) {
            level = fromEnvironment
        }
        let console = Console.standardError
        LoggingSystem.bootstrap { label in
            switch format {
            case .text: TextLogHandler(label: label, level: level, console: console)
            case .json: JSONLinesLogHandler(label: label, level: level, console: console)
            }
        }
    }

    /// `sync --verbose` is `--log-level info`.
    private static func fallbackLevel(_ command: any ParsableCommand) -> Logger.Level {
        (command as? CDFSyncCommand.Sync)?.verbose == true || (command as? CDFSyncCommand.Refresh)?.verbose == true
            ? .info : .notice
    }

    static func environmentLevel(_ environment: [String: String]) throws -> Logger.Level? {
        guard let text = environment["CDFSYNC_LOG_LEVEL"], !text.isEmpty else { return nil }
        guard let level = LogLevel(rawValue: text.lowercased()) else {
            throw ValidationError("CDFSYNC_LOG_LEVEL=\(text) is not a level; use one of "
                + LogLevel.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return level.level
    }
}

/// Log lines for people, on stderr (through ``Console``, so a progress line is redrawn below them).
///
/// On a terminal: `notice: warehouse starting (4s)`. Elsewhere (a file, a journal): the time, the level, the
/// logger's label, the message and the metadata as `key=value`:
/// `2026-03-01T09:00:00.123Z info cdfsync.engine: applied 10000 changes (checkpoint v3) pipeline=p run_id=7`.
struct TextLogHandler: LogHandler {
    let label: String
    let console: Console
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, level: Logger.Level, console: Console) {
        self.label = label
        self.logLevel = level
        self.console = console
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let message = DatabricksError.oneLine(event.message.description)
        if console.isTerminal {
            console.line("\(event.level): \(message)")
            return
        }
        var line = "\(LogTime.now()) \(event.level) \(label): \(message)"
        let all = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        for (key, value) in all.sorted(by: { $0.key < $1.key }) {
            line += " \(key)=\(DatabricksError.oneLine(value.description))"
        }
        console.line(line)
    }
}

/// One JSON object per log event, on its own line on stderr (`--log-format json`, for `serve` and log collectors):
/// `{"timestamp":"2026-03-01T09:00:00.123Z","level":"info","label":"cdfsync.engine","message":"…",
/// "metadata":{"pipeline":"p","run_id":"7"}}`.
struct JSONLinesLogHandler: LogHandler {
    let label: String
    let console: Console
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, level: Logger.Level, console: Console) {
        self.label = label
        self.logLevel = level
        self.console = console
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var w = JSONWriter()
        w.beginObject()
        w.key("timestamp"); w.string(LogTime.now())
        w.key("level"); w.string(event.level.rawValue)
        w.key("label"); w.string(label)
        w.key("message"); w.string(event.message.description)
        let all = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        if !all.isEmpty {
            w.key("metadata")
            Self.write(.dictionary(all), to: &w)
        }
        w.endObject()
        console.line(String(decoding: w.bytes, as: UTF8.self))
    }

    static func write(_ value: Logger.MetadataValue, to w: inout JSONWriter) {
        switch value {
        case .string(let s): w.string(s)
        case .stringConvertible(let c): w.string(c.description)
        case .array(let list):
            w.beginArray()
            for v in list { write(v, to: &w) }
            w.endArray()
        case .dictionary(let d):
            w.beginObject()
            for (k, v) in d.sorted(by: { $0.key < $1.key }) {
                w.key(k)
                write(v, to: &w)
            }
            w.endObject()
        }
    }
}

/// Timestamps of log lines: ISO 8601 in UTC with milliseconds.
enum LogTime {
    static func now() -> String {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        var seconds = time_t(t.tv_sec)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(t.tv_nsec / 1_000_000))
    }
}

extension CDFSyncCommand.Sync: LoggingCommand {}
extension CDFSyncCommand.Replay: LoggingCommand {}
extension CDFSyncCommand.Refresh: LoggingCommand {}
extension CDFSyncCommand.Schedule: LoggingCommand {}
extension CDFSyncCommand.Discover: LoggingCommand {}
extension CDFSyncCommand.Connection.Test: LoggingCommand {}
extension CDFSyncCommand.PipelineCommand.Init: LoggingCommand {}
extension CDFSyncCommand.PipelineCommand.Validate: LoggingCommand {}
extension CDFSyncCommand.PipelineCommand.Preview: LoggingCommand {}
extension CDFSyncCommand.Panel.Export: LoggingCommand {}
