import CDFSyncCore
import CDFSyncStorage
import Foundation

/// What one sync run did: the numbers printed at the end and stored in the run's audit record.
public struct SyncSummary: Sendable, Equatable {
    public var runID: UInt64 = 0
    public var pipeline: String
    public var table: String
    public var mode: String = "cdf"
    /// Why `mode: auto` chose ``mode`` (`delta.enableChangeDataFeed is true`); nil when the pipeline named it.
    public var modeReason: String?
    /// The checkpoint before the run (nil: never synced).
    public var fromVersion: Int64?
    /// The version the run read up to (inclusive), when it read anything.
    public var toVersion: Int64?
    public var latestVersion: Int64?
    public var statementIDs: [String] = []
    public var rowsRead = 0
    public var inserted = 0
    public var updated = 0
    public var unchanged = 0
    /// Rows older than what the panel already holds for their key (per-key monotonicity).
    public var skippedOlder = 0
    public var deletesIgnored = 0
    public var preimagesIgnored = 0
    public var invalid = 0
    /// Rows not imported because their consent value is not opted in and their identity resolved to no participant
    /// the panel held when they were applied (decided in the writer's transaction).
    public var consentBlocked = 0
    /// Rows whose watermark cursor is NULL (counted and reported, never silently dropped).
    public var nullCursor = 0
    /// Watermark mode: the cursor after the run.
    public var watermark: String?
    /// The watermark of the checkpoint the run started from (watermark mode).
    public var fromWatermark: String?
    /// The table version of the pipeline's checkpoint when the run ended (nil: none yet, or a watermark).
    public var checkpointVersion: Int64?
    /// When the run's commits reached the disk: `commit` (each one) or `run` (`sync --durability run`: once,
    /// before delivery).
    public var durability = "commit"
    public var invalidSamples: [String] = []
    public var bytesReceived = 0
    public var seconds: Double = 0
    /// The process's peak resident set size when the run ended (`VmHWM`, bytes; 0 where /proc is absent).
    /// Design §2.4: it must not grow with the size of a table or a result.
    public var peakResidentBytes = 0
    public var delivered = 0
    /// Events: update post-images ignored (events are immutable; only inserts are taken).
    public var eventUpdatesIgnored = 0
    /// New source keys linked to an existing participant through email or phone.
    public var linked = 0
    /// Identity conflicts recorded (a weaker key points at another participant); never merged.
    public var conflicts = 0
    /// Changes acknowledged by webhook sinks in this run.
    public var webhookDelivered = 0
    public var outputFiles: [String] = []
    public var warnings: [String] = []
    /// Column changes of the source inside the versions read (a rename, an added or dropped column), which the run
    /// read across: e.g. `v9 column email renamed to email_address`.
    public var schemaChanges: [String] = []
    public var error: String?
    public var startedAt = Date()
    /// Whether the run has ended (its record says `succeeded` or `failed`); until then it says `running`, and a
    /// record left `running` by a process that is gone is marked `interrupted` by the next run (``RunStatus``).
    public var finished = false
    /// The process that ran it: its pid, and its ``WriterLock/processToken`` (pids repeat, in containers at once).
    public var processID = Int32(getpid())
    public var processToken = WriterLock.processToken

    public init(pipeline: String, table: String) {
        self.pipeline = pipeline
        self.table = table
    }

    /// Whether the run found nothing to do.
    public var noNewCommits: Bool { toVersion == nil && error == nil && rowsRead == 0 && mode != "watermark" }

    public var rowsPerSecond: Double { seconds > 0 ? Double(rowsRead) / seconds : 0 }

    /// The audit record (design §2.6) as JSON.
    public func auditJSON() -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("run_id"); w.uint(runID)
        w.key("pipeline"); w.string(pipeline)
        w.key("source"); w.string(table)
        w.key("mode"); w.string(mode)
        if let modeReason { w.key("mode_reason"); w.string("auto → \(mode) (\(modeReason))") }
        w.key("started_at"); w.string(ISO8601DateFormatter().string(from: startedAt))
        w.key("seconds"); w.raw(Array(String(format: "%.3f", seconds).utf8))
        w.key("host"); w.string(ProcessInfo.processInfo.hostName)
        w.key("user"); w.string(ProcessInfo.processInfo.environment["USER"] ?? "unknown")
        w.key("pid"); w.int(Int64(processID))
        w.key("process"); w.string(processToken)
        w.key("from_version"); if let v = fromVersion { w.int(v) } else { w.null() }
        w.key("to_version"); if let v = toVersion { w.int(v) } else { w.null() }
        w.key("latest_version"); if let v = latestVersion { w.int(v) } else { w.null() }
        w.key("checkpoint_version"); if let v = checkpointVersion { w.int(v) } else { w.null() }
        w.key("durability"); w.string(durability)
        w.key("watermark"); w.string(watermark)
        w.key("statement_ids"); w.beginArray(); statementIDs.forEach { w.string($0) }; w.endArray()
        w.key("counts")
        w.beginObject()
        w.key("read"); w.int(Int64(rowsRead))
        w.key("inserted"); w.int(Int64(inserted))
        w.key("updated"); w.int(Int64(updated))
        w.key("unchanged"); w.int(Int64(unchanged))
        w.key("skipped_older"); w.int(Int64(skippedOlder))
        w.key("deletes_ignored"); w.int(Int64(deletesIgnored))
        w.key("preimages_ignored"); w.int(Int64(preimagesIgnored))
        w.key("invalid"); w.int(Int64(invalid))
        w.key("consent_blocked"); w.int(Int64(consentBlocked))
        w.key("linked"); w.int(Int64(linked))
        w.key("conflicts"); w.int(Int64(conflicts))
        w.key("event_updates_ignored"); w.int(Int64(eventUpdatesIgnored))
        w.key("null_cursor"); w.int(Int64(nullCursor))
        w.key("delivered"); w.int(Int64(delivered))
        w.key("webhook_delivered"); w.int(Int64(webhookDelivered))
        w.endObject()
        w.key("invalid_samples"); w.beginArray(); invalidSamples.forEach { w.string($0) }; w.endArray()
        w.key("bytes_received"); w.int(Int64(bytesReceived))
        w.key("peak_rss_bytes"); w.int(Int64(peakResidentBytes))
        w.key("output_files"); w.beginArray(); outputFiles.forEach { w.string($0) }; w.endArray()
        w.key("warnings"); w.beginArray(); warnings.forEach { w.string($0) }; w.endArray()
        w.key("schema_changes"); w.beginArray(); schemaChanges.forEach { w.string($0) }; w.endArray()
        // `status` and `error` stay the last two keys: ``RunStatus/interrupted(_:)`` rewrites them in place.
        w.key("status"); w.string(!finished ? RunStatus.running : error == nil ? RunStatus.succeeded : RunStatus.failed)
        w.key("error"); w.string(error)
        w.endObject()
        return w.bytes
    }

    /// Where a failed run left the pipeline: its checkpoint (unchanged, or how far it moved) and the changes it
    /// applied before the failure, which stay in the panel — the next run reads them again and finds them
    /// unchanged (design §2.2).
    public var failureState: String {
        let checkpoint: String
        let replay = mode.hasPrefix("replay")
        if replay {
            // `fromVersion` of a replay is the version before its range, not a checkpoint; a replay never moves one.
            checkpoint = "checkpoint unchanged at \(checkpointVersion.map { "v\($0)" } ?? "the beginning (never synced)") "
                + "(a replay never moves it)"
        } else if mode == "watermark" {
            let from = fromWatermark.map { "watermark \($0)" } ?? "the beginning (never synced)"
            checkpoint = watermark == fromWatermark
                ? "checkpoint unchanged at \(from)"
                : "checkpoint moved from \(from) to watermark \(watermark ?? "")"
        } else {
            let from = fromVersion.map { "v\($0)" } ?? "the beginning (never synced)"
            checkpoint = checkpointVersion == fromVersion || checkpointVersion == nil
                ? "checkpoint unchanged at \(from)"
                : "checkpoint moved from \(from) to v\(checkpointVersion!)"
        }
        let applied = inserted + updated + linked
        guard applied > 0 else { return checkpoint + (replay ? "; nothing was applied" : "; nothing after it was applied") }
        return checkpoint + "; \(applied) change(s) applied before the failure (\(inserted) inserted, \(updated + linked) updated) "
            + "stay in the panel and read as unchanged when the \(replay ? "replay" : "sync") runs again"
    }

    /// The human summary printed after a run.
    public func render() -> String {
        var lines: [String] = []
        let from = fromVersion.map { "v\($0)" } ?? "the beginning"
        if let error {
            lines.append("sync of \(table) FAILED after \(String(format: "%.2f", seconds)) s: \(error)")
            lines.append("  " + failureState)
            return lines.joined(separator: "\n")
        }
        if noNewCommits {
            lines.append("sync of \(table): no new commits (checkpoint \(from), latest v\(latestVersion ?? -1)); nothing changed")
            return lines.joined(separator: "\n")
        }
        let what: String
        switch mode {
        case "watermark": what = "rows up to \(watermark ?? "the start")"
        case "snapshot": what = toVersion.map { "snapshot at v\($0)" } ?? "snapshot"
        default: what = "versions v\((fromVersion.map { $0 + 1 }) ?? 0)…v\(toVersion ?? 0)"
        }
        lines.append("sync of \(table) [\(mode)] \(what) (run \(runID))")
        if let modeReason { lines.append("  mode           auto → \(mode) (\(modeReason))") }
        lines.append("  rows read      \(rowsRead)  (\(String(format: "%.1f", Double(bytesReceived) / 1_048_576)) MiB of JSON, \(statementIDs.count) statement(s))")
        lines.append("  inserted       \(inserted)")
        lines.append("  updated        \(updated)")
        lines.append("  unchanged      \(unchanged)" + (skippedOlder > 0 ? "  (+\(skippedOlder) older than the panel, skipped)" : ""))
        lines.append("  ignored        \(deletesIgnored) deletes, \(preimagesIgnored) update pre-images")
        if linked > 0 || conflicts > 0 { lines.append("  identity       \(linked) linked by email/phone, \(conflicts) conflict(s) recorded (not merged)") }
        if eventUpdatesIgnored > 0 { lines.append("  events         \(eventUpdatesIgnored) updates ignored (events are immutable)") }
        if consentBlocked > 0 { lines.append("  consent        \(consentBlocked) not opted in, not imported") }
        if invalid > 0 { lines.append("  invalid        \(invalid)  e.g. \(invalidSamples.first ?? "")") }
        if nullCursor > 0 { lines.append("  null cursor    \(nullCursor) rows have no cursor value and cannot be synced by watermark") }
        lines.append("  delivered      \(delivered) change(s)" + (outputFiles.isEmpty ? "" : " → \(outputFiles.joined(separator: ", "))"))
        if webhookDelivered > 0 { lines.append("  webhook        \(webhookDelivered) change(s) acknowledged") }
        lines.append(String(format: "  time           %.2f s, %.0f rows/s", seconds, rowsPerSecond)
            + (peakResidentBytes > 0 ? String(format: ", peak memory %.0f MB", Double(peakResidentBytes) / 1_048_576) : ""))
        if durability == "run" { lines.append("  durability     run: commits not synced one by one; the store was synced before delivery") }
        for c in schemaChanges { lines.append("  schema change  \(c)") }
        for w in warnings { lines.append("  warning: \(w)") }
        return lines.joined(separator: "\n")
    }
}

/// The `status` of a run record: `running` from the moment the run starts until it ends `succeeded` or `failed`.
/// A run whose process ended without finishing it (SIGKILL, a crash, a host that stopped) stays `running` in the
/// store; it is `interrupted` once no process holds the state directory (readers show it so), and the next run
/// rewrites it so (``CDFSync``).
public enum RunStatus {
    public static let running = "running"
    public static let succeeded = "succeeded"
    public static let failed = "failed"
    public static let interrupted = "interrupted"

    /// What a record's status means now: a `running` record is `interrupted` unless the process that wrote it
    /// still holds the state directory's writer lock (`holder`, nil when no process holds it).
    public static func effective(_ record: [String: Any], holder: WriterLock.Holder?) -> String {
        let status = record["status"] as? String ?? "?"
        guard status == running else { return status }
        guard let holder else { return interrupted }
        if let token = record["process"] as? String { return token == holder.process ? running : interrupted }
        return (record["pid"] as? Int).map { Int32($0) } == holder.pid ? running : interrupted
    }

    /// Why a run was interrupted, for its record and the CLI.
    static func interruptedMessage(pid: Int32?) -> String {
        "process " + (pid.map { "\($0) " } ?? "") + "ended before the run finished (killed, crashed or host stopped); "
            + "what it applied up to its checkpoint stands"
    }

    /// `record` as it reads now: a `running` record whose process no longer holds the state directory's writer lock
    /// (`holder`) reads `interrupted` (``interrupted(_:pid:)``); any other record is returned as it is.
    public static func current(_ record: [UInt8], holder: WriterLock.Holder?) -> [UInt8] {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(record))) as? [String: Any],
            object["status"] as? String == running, effective(object, holder: holder) == interrupted
        else { return record }
        return interrupted(record, pid: (object["pid"] as? Int).map { Int32($0) }) ?? record
    }

    /// `record` with its trailing `"status":"running","error":null` replaced by `interrupted` and the reason; nil
    /// when the record does not end that way (not running, or not written by ``SyncSummary/auditJSON()``).
    public static func interrupted(_ record: [UInt8], pid: Int32?) -> [UInt8]? {
        let tail = Array(#""status":"running","error":null}"#.utf8)
        guard record.count > tail.count, Array(record.suffix(tail.count)) == tail else { return nil }
        var message = JSONWriter()
        message.string(interruptedMessage(pid: pid))
        return Array(record.dropLast(tail.count)) + Array(#""status":"interrupted","error":"#.utf8) + message.bytes
            + Array("}".utf8)
    }
}
