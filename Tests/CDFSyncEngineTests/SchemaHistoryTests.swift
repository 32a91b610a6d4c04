import CDFSyncClient
@testable import CDFSyncCore
@testable import CDFSyncEngine
import Testing

/// Reading DESCRIBE HISTORY's column changes: where ranges must end, and what each mapped column was called.
@Suite("Schema history")
struct SchemaHistoryTests {
    func entry(_ v: Int64, _ op: String, _ params: [String: String] = [:]) -> HistoryEntry {
        HistoryEntry(version: v, operation: op, timestamp: nil, metrics: [:], parameters: params)
    }

    var history: SchemaHistory {
        SchemaHistory(history: [
            entry(12, "RENAME COLUMN", ["oldColumnPath": "mail", "newColumnPath": "email"]),
            entry(3, "WRITE"),
            entry(5, "ADD COLUMNS", ["columns": #"[{"column":{"name":"tier","type":"string","nullable":true,"metadata":{}}}]"#]),
            entry(8, "RENAME COLUMN", ["oldColumnPath": "tier", "newColumnPath": "level"]),
            entry(10, "RENAME COLUMN", ["oldColumnPath": "email", "newColumnPath": "mail"]),
            entry(11, "DROP COLUMNS", ["columns": #"["city","`odd.name`"]"#]),
            entry(14, "CHANGE COLUMN", ["column": "{}"]),
            entry(15, "SET TBLPROPERTIES", ["properties": #"{"delta.enableChangeDataFeed":"true"}"#]),
            entry(16, "SET TBLPROPERTIES", ["properties": #"{"delta.columnMapping.mode":"name"}"#]),
            entry(17, "RENAME COLUMN", ["oldColumnPath": "s.a", "newColumnPath": "s.b"]),
        ])
    }

    @Test func breaksAreTheChangesChangeDataCannotBeReadAcross() {
        // Added columns (5) and other property changes (15) are read across; a nested rename (17) still splits.
        #expect(history.breaks == [8, 10, 11, 12, 14, 16, 17])
    }

    @Test func columnsAreReadUnderTheNamesTheyHadAtAVersion() {
        let h = history
        // email was mail (10…11) and email before that; level was tier from 5 to 7 and did not exist before 5.
        #expect(h.reading(["email", "level", "phone"], at: 20) == [:])
        #expect(h.reading(["email", "level"], at: 11) == ["email": .renamed("mail")])
        #expect(h.reading(["email", "level"], at: 9) == [:])  // renamed away and back
        #expect(h.reading(["email", "level"], at: 7) == ["level": .renamed("tier")])
        #expect(h.reading(["Level"], at: 7) == ["Level": .renamed("tier")])
        #expect(h.reading(["EMAIL", "level"], at: 4) == ["level": .absent])
        #expect(h.fate(of: "CITY", exists: { _ in false }) == .dropped(version: 11))
        #expect(h.fate(of: "odd.name", exists: { _ in false }) == .dropped(version: 11))
        #expect(h.fate(of: "tier", exists: { $0 == "level" }) == .renamed(to: "level", version: 8))
        #expect(h.fate(of: "email", exists: { $0 == "mail" }) == .renamed(to: "mail", version: 10))
    }

    @Test func aColumnDroppedAndAddedAgainIsTheOldOneBeforeTheDrop() {
        let h = SchemaHistory(history: [
            entry(2, "RENAME COLUMN", ["oldColumnPath": "mail", "newColumnPath": "email"]),
            entry(4, "DROP COLUMNS", ["columns": #"["email"]"#]),
            entry(6, "ADD COLUMNS", ["columns": #"[{"column":{"name":"email","type":"string"}}]"#]),
        ])
        #expect(h.reading(["email"], at: 6) == [:])
        #expect(h.reading(["email"], at: 5) == ["email": .absent])  // between the drop and the add: no such column
        #expect(h.reading(["email"], at: 3) == [:])  // the old column, under the same name
        #expect(h.reading(["email"], at: 1) == ["email": .renamed("mail")])
    }

    @Test func anAddedColumnAsDeltaRsRecordsIt() {
        let h = SchemaHistory(history: [
            entry(2, "ADD COLUMN", ["fields": #"[{"name":"tier","type":"string","nullable":true,"metadata":{}}]"#]),
        ])
        #expect(h.breaks.isEmpty)
        #expect(h.reading(["tier", "id"], at: 1) == ["tier": .absent])
    }

    @Test func columnPathsAsDeltaRecordsThem() {
        #expect(SchemaHistory.topLevelName("email") == "email")
        #expect(SchemaHistory.topLevelName("`a.b`") == "a.b")
        #expect(SchemaHistory.topLevelName("`x``y`") == "x`y")
        #expect(SchemaHistory.topLevelName("s.a") == nil)
        #expect(SchemaHistory.topLevelName("`s`.`a`") == nil)
    }

    @Test func theVersionOfARefusedRangeComesFromTheMessage() {
        func error(_ cls: String, _ text: String) -> DatabricksError {
            DatabricksError(.statementFailed, "[\(cls)] \(text)", remedy: "", errorClass: cls)
        }
        let e = error("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE",
            "Retrieving table changes between version 3 and 9 failed because of an incompatible schema change. Your read schema is {} at version 9, but we found an incompatible schema change at version 6. If possible, ...")
        #expect(e.isSchemaBreak)
        #expect(e.schemaBreakVersion == 6)
        #expect(error("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_DATA_SCHEMA", "changed").schemaBreakVersion == nil)
        #expect(error("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_DATA_SCHEMA", "changed").isSchemaBreak)
        #expect(!error("DELTA_MISSING_CHANGE_DATA", "at version 6").isSchemaBreak)
    }

    @Test func plannedRangesEndBeforeEachBreak() {
        let ranges = RangePlanner().plan(start: 2, end: 12, history: [], breaks: [2, 5, 9, 13])
        #expect(ranges.map { [$0.start, $0.end] } == [[2, 4], [5, 8], [9, 12]])
    }
}
