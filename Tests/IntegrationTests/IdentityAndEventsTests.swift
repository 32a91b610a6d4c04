import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

@Suite("Identity and events over loopback")
struct IdentityAndEventsTests {
    func run(_ sim: RunningSimulator, _ p: Pipeline, _ dir: TempDir, replay: ReplayOptions? = nil) throws -> SyncSummary {
        let store = try PanelStore(directory: dir.sub("s"))
        let client = StatementClient(settings: try sim.settings())
        let sync = CDFSync(client: client, store: store, options: try SyncOptions(pipeline: p, outputDirectory: dir.sub("o-\(p.name)")))
        return try replay.map { try sync.replay($0) } ?? sync.run()
    }

    @Test func aSecondSourceLinksByEmailAndConflictsAreRecordedNotMerged() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let first = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML)
        let a = try run(sim, first, dir)
        // The same people under a second pipeline (another scope): every one links by email, none is new.
        var second = first
        second.name = "crm"
        let b = try run(sim, second, dir)
        #expect(b.inserted == 0)
        #expect(b.linked == a.inserted + a.linked, "every source key of the first scope, linked or new, links again")
        let store = try PanelStore(directory: dir.sub("s"))
        let someone = try #require(try store.record(externalID: "P-000001", scope: "panel"))
        #expect(try store.participantID(externalID: "P-000001", scope: "crm") == someone.participantID)
        _ = store
    }

    @Test func eventsAreInsertOnlyDeduplicatedAcrossRunsAndReplaysAndResolveUsers() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let table = try JSONDecoder().decode(Table.self, from: Data(#"""
            {"name": "main.research.events", "table_type": "MANAGED",
             "columns": [{"name": "event_id", "type": "STRING"}, {"name": "event_name", "type": "STRING"},
                         {"name": "occurred_at", "type": "TIMESTAMP"}, {"name": "participant_id", "type": "STRING"},
                         {"name": "device", "type": "STRING"}],
             "commits": [
               {"version": 0, "timestamp": "2026-03-01T00:00:00.000Z", "operation": "CREATE TABLE",
                "set_properties": {"delta.enableChangeDataFeed": "true"}},
               {"version": 1, "timestamp": "2026-03-02T00:00:00.000Z", "operation": "WRITE", "insert": [
                 ["E1", "survey_started", "2026-03-02T00:00:01.000Z", "P-000001", "ios"],
                 ["E2", "survey_completed", "2026-03-02T00:05:00.000Z", "P-000001", "ios"],
                 ["E3", "login", "2026-03-02T00:06:00.000Z", "NOBODY", "web"]]},
               {"version": 2, "timestamp": "2026-03-03T00:00:00.000Z", "operation": "MERGE",
                "insert": [["E4", "login", "2026-03-03T00:00:01.000Z", "P-000002", "android"]],
                "update": [{"before": ["E3", "login", "2026-03-02T00:06:00.000Z", "NOBODY", "web"],
                            "after": ["E3", "login", "2026-03-02T00:06:00.000Z", "NOBODY", "desktop"]}]}
             ]}
            """#.utf8))
        try sim.sim.addTable(table)
        _ = try run(sim, try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML), dir)
        let events = try PipelineLoader.load(yaml: """
            name: activity
            connection: {warehouse_id: 8a1c2f3d4e5b6a70}
            source: main.research.events
            kind: events
            identity_pipeline: panel
            mapping: {event_id: event_id, name: event_name, timestamp: occurred_at, user_id: participant_id}
            attributes: [{column: device}]
            validation: {required: [event_id]}
            """)
        let first = try run(sim, events, dir)
        #expect(first.inserted == 4)
        #expect(first.eventUpdatesIgnored == 1, "the update of E3 is ignored: events are immutable")
        let again = try run(sim, events, dir)
        #expect(again.noNewCommits)
        let replay = try run(sim, events, dir, replay: ReplayOptions(fromVersion: 0))
        #expect(replay.inserted == 0 && replay.unchanged == 4, "replayed events are duplicates, delivered once")
        let lines = try deliveredLines(dir.sub("o-activity"))
        #expect(lines.map { $0["event_id"] as? String } == ["E1", "E2", "E3", "E4"])
        #expect(lines[2]["participant_id"] is NSNull, "E3's user is unknown")
        #expect(lines[0]["participant_id"] as? Int != nil)
        #expect(((lines[0]["record"] as? [String: Any])?["properties"] as? [String: Any])?["device"] as? String == "ios")
    }
}
