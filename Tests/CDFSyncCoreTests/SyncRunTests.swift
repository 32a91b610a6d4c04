import Testing

@testable import CDFSyncCore

/// The run's decisions as tables of transitions: each case drives ``SyncRun`` with scripted answers (the facts the
/// engine would find, and what each read does) and compares the actions it asks for.
@Suite("Sync run state machine")
struct SyncRunTests {
    /// What a scripted engine answers.
    struct Script {
        var mode: ReadMode = .cdf
        var source = SyncRun.Source(type: "MANAGED", created: "2026-03-01T08:00:00.000Z", latest: 6)
        var history: [HistoryEntry] = (0...6).reversed().map {
            HistoryEntry(version: $0, operation: "WRITE", timestamp: nil, metrics: [:])
        }
        var versionAtOrAfter: Int64? = nil
        /// How a change-data read of (start, end) fails, if it does.
        var failures: [ClosedRange<Int64>: SyncRun.ReadFailure] = [:]
        /// Watermark pages: rows per page (the last position is made up).
        var pages: [Int] = []
        var pageSize = 10
    }

    /// Runs the machine to its end; returns the actions, written short.
    func trace(_ kind: SyncRun.Kind = .sync, settings: SyncRun.Settings = .init(), checkpoint: SyncRun.Checkpoint =
        .init(version: nil), _ script: Script = Script()) -> [String]
    {
        var machine = SyncRun(kind: kind, settings: settings, checkpoint: checkpoint)
        var out: [String] = []
        var action = machine.start()
        var pages = script.pages[...]
        for _ in 0..<200 {
            switch action {
            case .prepareOutput:
                out.append("prepare")
                action = machine.outputPrepared()
            case .decideMode:
                out.append("mode")
                action = machine.modeDecided(script.mode)
            case .checkColumns:
                out.append("columns")
                action = machine.columnsChecked()
            case .describeSource:
                out.append("describe")
                action = machine.sourceDescribed(script.source)
            case .findVersion(let t):
                out.append("find \(t)")
                action = machine.versionFound(script.versionAtOrAfter)
            case .readHistory(let limit):
                out.append("history \(limit)")
                action = machine.historyRead(script.history)
            case .checkRetention(let v):
                out.append("retention v\(v)")
                action = machine.retentionChecked()
            case .warn(let w):
                out.append("warn \(w)")
                action = machine.warned()
            case .markAbsent:
                out.append("mark absent")
                action = machine.absentMarked()
            case .read(let part, let note):
                if let note { out.append("note \(note)") }
                switch part {
                case .changes(let r):
                    out.append("read v\(r.start)…v\(r.end) \(r.disposition.rawValue)")
                    if let f = script.failures[r.start...r.end] {
                        action = machine.partFailed(f)
                    } else {
                        action = machine.partRead()
                    }
                case .snapshot(let v, let reason):
                    out.append("snapshot \(v.map { "v\($0)" } ?? "view") \(reason)")
                    action = machine.partRead()
                case .watermarkPage(let from):
                    let rows = pages.popFirst() ?? 0
                    out.append("page after \(from?.cursor ?? "start"): \(rows)")
                    action = machine.partRead(
                        watermarkRows: rows, lastPosition: rows > 0 ? .init(cursor: "t\(out.count)", key: "k") : nil,
                        pageSize: script.pageSize)
                case .nullCursors:
                    out.append("nulls")
                    action = machine.partRead()
                }
            case .deliver:
                out.append("deliver")
                action = machine.delivered()
            case .finish:
                out.append("finish")
                return out
            case .refuse(let r):
                out.append("refuse \(r)")
                return out
            }
        }
        Issue.record("the run did not end in 200 steps: \(out)")
        return out
    }

    var pipeline: SyncRun.Settings {
        var s = SyncRun.Settings()
        s.hasPipeline = true
        return s
    }

    @Test func aFirstSyncReadsEveryVersionFromTheStartInBoundedStatements() {
        var s = pipeline
        s.maxVersionsPerStatement = 3
        #expect(trace(settings: s) == [
            "prepare", "mode", "columns", "describe", "history 8",
            "read v0…v2 EXTERNAL_LINKS", "read v3…v5 EXTERNAL_LINKS", "read v6…v6 EXTERNAL_LINKS", "deliver", "finish",
        ])
    }

    @Test func aSyncFromACheckpointChecksRetentionAndReadsWhatFollows() {
        #expect(trace(checkpoint: .init(version: 4, sourceCreated: "2026-03-01T08:00:00Z")) == [
            "prepare", "mode", "describe", "history 3", "retention v5", "read v5…v6 EXTERNAL_LINKS", "deliver", "finish",
        ], "the same instant written another way is the same table")
    }

    @Test func nothingNewReadsNothingButStillDelivers() {
        #expect(trace(checkpoint: .init(version: 6)) == ["prepare", "mode", "describe", "deliver", "finish"])
    }

    @Test(arguments: [
        (SyncRun.Checkpoint(version: 9), "refuse checkpointAfterLatest(checkpoint: 9, latest: 6)"),
        (SyncRun.Checkpoint(version: 3, sourceCreated: "2025-01-01T00:00:00.000Z"),
         "refuse sourceRecreated(created: \"2026-03-01T08:00:00.000Z\", checkpointCreated: \"2025-01-01T00:00:00.000Z\", checkpoint: 3, latest: 6)"),
    ])
    func aRestartedHistoryIsRefusedBeforeAnythingIsRead(_ checkpoint: SyncRun.Checkpoint, _ refusal: String) {
        #expect(trace(checkpoint: checkpoint) == ["prepare", "mode", "describe", refusal])
    }

    @Test func aRefreshReadsTheWholeSourceThenMarksWhatIsAbsent() {
        // A change-data table: a snapshot at the latest version, whatever the checkpoint (no history, no ranges).
        #expect(trace(.refresh(dryRun: false), settings: pipeline, checkpoint: .init(version: 4)) == [
            "prepare", "mode", "columns", "describe", "snapshot v6 refresh", "mark absent", "deliver", "finish",
        ])
        // A dry run prepares and delivers nothing.
        #expect(trace(.refresh(dryRun: true), settings: pipeline) == [
            "mode", "columns", "describe", "snapshot v6 refresh", "mark absent", "finish",
        ])
        // A view in snapshot mode: the whole view; by watermark: every page, then the NULL cursors.
        var script = Script()
        script.source = .init(type: "VIEW", created: nil, latest: nil)
        script.mode = .snapshot
        #expect(trace(.refresh(dryRun: false), settings: pipeline, script) == [
            "prepare", "mode", "columns", "describe", "snapshot view refresh", "mark absent", "deliver", "finish",
        ])
        script.mode = .watermark
        script.pages = [10, 10, 3]
        #expect(trace(.refresh(dryRun: false), settings: pipeline, script) == [
            "prepare", "mode", "columns", "page after start: 10", "page after t4: 10", "page after t5: 3", "nulls",
            "mark absent", "deliver", "finish",
        ])
        // A history that no longer continues the checkpoint is refused, as a sync refuses it.
        #expect(trace(.refresh(dryRun: false), checkpoint: .init(version: 9)) == [
            "prepare", "mode", "describe", "refuse checkpointAfterLatest(checkpoint: 9, latest: 6)",
        ])
        #expect(trace(.refresh(dryRun: false), checkpoint: .init(version: 3, sourceCreated: "2025-01-01T00:00:00.000Z"))
            .last?.hasPrefix("refuse sourceRecreated") == true)
    }

    @Test func aViewHasNoChangeDataButASnapshotOrWatermarkReadsIt() {
        var script = Script()
        script.source = .init(type: "VIEW", created: nil, latest: nil)
        #expect(trace(.sync, script) == ["prepare", "mode", "describe", "refuse viewHasNoChangeData(type: \"VIEW\")"])
        script.mode = .snapshot
        #expect(trace(settings: pipeline, script) == [
            "prepare", "mode", "columns", "describe", "snapshot view mode", "deliver", "finish",
        ])
    }

    @Test(arguments: [
        (Pipeline.Start.version(7), [], "starts with the next commit: nothing to read yet"),
        (Pipeline.Start.version(8), ["refuse startAfterLatest(start: 8, latest: 6, fromFlag: false)"], ""),
        (Pipeline.Start.version(2), ["history 6", "read v2…v6 EXTERNAL_LINKS"], ""),
        (Pipeline.Start.latest, ["warn start: latest — took a snapshot at v6; change data continues from there",
                                 "snapshot v6 startLatest"], ""),
        (Pipeline.Start.timestamp("2026-03-04T00:00:00Z"), ["find 2026-03-04T00:00:00Z", "history 5",
                                                            "read v3…v6 EXTERNAL_LINKS"], ""),
    ])
    func aFirstSyncStartsWhereThePipelineSays(_ start: Pipeline.Start, _ middle: [String], _ comment: String) {
        var s = pipeline
        s.start = start
        s.startFromFlag = false
        var script = Script()
        script.versionAtOrAfter = 3
        let got = trace(settings: s, script)
        let tail = middle.first?.hasPrefix("refuse") == true ? [] : ["deliver", "finish"]
        let expected = ["prepare", "mode", "columns", "describe"] + middle + tail
        #expect(got == expected, "\(comment)")
    }

    @Test func noVersionAtOrAfterTheStartTimestampIsRefused() {
        var s = pipeline
        s.start = .timestamp("2027-01-01T00:00:00Z")
        #expect(trace(settings: s).last == "refuse noVersionAtOrAfter(timestamp: \"2027-01-01T00:00:00Z\", latest: 6)")
    }

    @Test func aRangeAcrossASchemaChangeIsSplitWhereTheWarehouseSaysOrInHalf() {
        var script = Script()
        script.failures = [0...6: .schemaChange(at: 4, errorClass: "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE"),
                           4...6: .schemaChange(at: nil, errorClass: "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE")]
        #expect(trace(.sync, script) == [
            "prepare", "mode", "describe", "history 8",
            "read v0…v6 EXTERNAL_LINKS",
            "note v0…v6 spans a schema change (DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE); reading v0…v3 and v4…v6 separately",
            "read v0…v3 EXTERNAL_LINKS",
            "read v4…v6 EXTERNAL_LINKS",
            "note v4…v6 spans a schema change (DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE); reading v4…v4 and v5…v6 separately",
            "read v4…v4 EXTERNAL_LINKS", "read v5…v6 EXTERNAL_LINKS", "deliver", "finish",
        ])
    }

    @Test(arguments: [
        SyncRun.ReadFailure.changeDataGone(errorClass: "DELTA_CHANGE_DATA_FILE_NOT_FOUND"),
        .startingCommitSchema(errorClass: "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_STARTING_COMMIT_SCHEMA"),
    ])
    func changeDataThatIsGoneIsResyncedFromASnapshotInASyncAndFailsAReplay(_ failure: SyncRun.ReadFailure) {
        var script = Script()
        var s = SyncRun.Settings()
        s.maxVersionsPerStatement = 3
        let errorClass = switch failure {
        case .changeDataGone(let c), .startingCommitSchema(let c), .schemaChange(_, let c): c
        case .other: ""
        }
        script.failures = [3...5: failure]
        #expect(trace(settings: s, checkpoint: .init(version: 2), script) == [
            "prepare", "mode", "describe", "history 5", "retention v3", "read v3…v5 EXTERNAL_LINKS",
            "warn change data for v3…v5 is unavailable (\(errorClass)); resynced from a snapshot at v6",
            "snapshot v6 changeDataGone(range: ClosedRange(3...5), errorClass: \"\(errorClass)\")", "deliver", "finish",
        ])
        // A replay does not fall back: the range's error stands.
        #expect(trace(.replay(from: 3, to: 5, dryRun: false), script).suffix(2) == [
            "read v3…v5 EXTERNAL_LINKS", "refuse partFailed",
        ])
        // Nor does a sync told not to.
        s.fallBackToSnapshot = false
        #expect(trace(settings: s, checkpoint: .init(version: 2), script).last == "refuse partFailed")
    }

    @Test func aSingleVersionRefusedForASchemaChangeIsAsGoodAsGone() {
        var script = Script()
        script.failures = [6...6: .schemaChange(at: 6, errorClass: "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE")]
        #expect(trace(checkpoint: .init(version: 5), script).suffix(4) == [
            "warn change data for v6…v6 is unavailable (DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE); resynced from a snapshot at v6",
            "snapshot v6 changeDataGone(range: ClosedRange(6...6), errorClass: \"DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE\")",
            "deliver", "finish",
        ])
    }

    @Test func anyOtherFailureStopsTheRun() {
        var script = Script()
        script.failures = [0...6: .other]
        #expect(trace(.sync, script).suffix(2) == ["read v0…v6 EXTERNAL_LINKS", "refuse partFailed"])
    }

    @Test func aReplayReadsItsRangeInOneStatementPerStretchAndNeverTheCheckpointsVersions() {
        #expect(trace(.replay(from: 2, to: 5, dryRun: false), checkpoint: .init(version: 6)) == [
            "prepare", "describe", "history 6", "read v2…v5 EXTERNAL_LINKS", "deliver", "finish",
        ])
        #expect(trace(.replay(from: 2, to: nil, dryRun: true)) == [
            "describe", "history 6", "read v2…v6 EXTERNAL_LINKS", "finish",
        ], "a dry run prepares and delivers nothing")
    }

    @Test func watermarkPagesGoOnWhileFullThenCountTheNullCursors() {
        var script = Script()
        script.mode = .watermark
        script.pages = [10, 10, 3]
        #expect(trace(settings: pipeline, script) == [
            "prepare", "mode", "columns", "page after start: 10", "page after t4: 10", "page after t5: 3", "nulls",
            "deliver", "finish",
        ])
        script.pages = [0]
        #expect(trace(settings: pipeline, script) == [
            "prepare", "mode", "columns", "page after start: 0", "nulls", "deliver", "finish",
        ])
    }

    @Test func theRowEstimatesChooseTheDispositionAndBoundTheStatements() {
        var script = Script()
        script.history = (0...6).reversed().map {
            HistoryEntry(version: $0, operation: "WRITE", timestamp: nil, metrics: ["numOutputRows": $0 == 3 ? 9_000_000 : 10])
        }
        #expect(trace(.sync, script).filter { $0.hasPrefix("read") } == [
            "read v0…v2 INLINE", "read v3…v3 EXTERNAL_LINKS", "read v4…v6 INLINE",
        ])
        var s = SyncRun.Settings()
        s.disposition = .externalLinks
        #expect(trace(settings: s, script).filter { $0.hasPrefix("read") }.allSatisfy { $0.hasSuffix("EXTERNAL_LINKS") })
    }
}
