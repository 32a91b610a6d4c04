import Foundation
import Testing

@testable import CDFSyncStorage

/// The field-by-field rule for a participant that several source keys feed (docs/pipelines.md, "Several source
/// keys, one participant"): the merge itself, and apply using it.
@Suite struct RecordMergeTests {
    static func source(_ stamp: UInt64, _ json: String, first: Bool = false) -> RecordMerge.Source {
        .init(stamp: stamp, record: Array(json.utf8), isFirst: first)
    }

    static func merged(_ sources: [RecordMerge.Source]) throws -> String {
        String(decoding: try #require(RecordMerge.merge(sources)), as: UTF8.self)
    }

    @Test func newestNonNullValueWinsAndANullNeverErases() throws {
        let a = Self.source(1, #"{"external_id":"A","first_name":"Ann","email":"a@x.io","phone":"+1555","contactable":true}"#, first: true)
        let b = Self.source(2, #"{"external_id":"B","first_name":"Anna","email":null,"phone":"+1666","contactable":true}"#)
        #expect(try Self.merged([a, b])
            == #"{"external_id":"A","first_name":"Anna","email":"a@x.io","phone":"+1666","contactable":true}"#)
        // The order is the stamps', not the order given.
        #expect(try Self.merged([b, a]) == Self.merged([a, b]))
        // A is newer now: its values win where it has them.
        let a2 = Self.source(3, #"{"external_id":"A","first_name":null,"email":"a2@x.io","phone":"+1555","contactable":true}"#, first: true)
        #expect(try Self.merged([a2, b])
            == #"{"external_id":"A","first_name":"Anna","email":"a2@x.io","phone":"+1555","contactable":true}"#)
        // A field every record has null stays null; a field only one has is kept.
        let c = Self.source(4, #"{"external_id":"C","country":null,"segment":"x"}"#, first: true)
        let d = Self.source(5, #"{"external_id":"D","country":null}"#)
        #expect(try Self.merged([c, d]) == #"{"external_id":"C","country":null,"segment":"x"}"#)
    }

    @Test func withdrawalWinsWhateverItsAge() throws {
        let out = Self.source(1, #"{"external_id":"A","consent_status":"withdrawn","contactable":false}"#, first: true)
        let newerIn = Self.source(2, #"{"external_id":"B","consent_status":"opted_in","contactable":true}"#)
        #expect(try Self.merged([out, newerIn])
            == #"{"external_id":"A","consent_status":"withdrawn","contactable":false}"#)
        // Once the withdrawing key opts in again, every key is contactable: the newest consent value.
        let backIn = Self.source(3, #"{"external_id":"A","consent_status":"yes","contactable":true}"#, first: true)
        #expect(try Self.merged([backIn, newerIn]) == #"{"external_id":"A","consent_status":"yes","contactable":true}"#)
        // Two withdrawals: the newest one's value.
        let out2 = Self.source(4, #"{"external_id":"B","consent_status":"unsubscribed","contactable":false}"#)
        #expect(try Self.merged([out, out2])
            == #"{"external_id":"A","consent_status":"unsubscribed","contactable":false}"#)
    }

    @Test func attributesMergeAttributeByAttribute() throws {
        let a = Self.source(1, #"{"external_id":"A","attributes":{"tier":"gold","age":41,"prefs":{"lang":"de"}}}"#, first: true)
        let b = Self.source(2, #"{ "external_id" : "B", "attributes" : { "tier" : null, "age" : 42, "city" : "Bonn" } }"#)
        #expect(try Self.merged([a, b])
            == #"{"external_id":"A","attributes":{"tier":"gold","age":42,"prefs":{"lang":"de"},"city":"Bonn"}}"#)
        let c = Self.source(3, #"{"external_id":"C","attributes":null}"#)
        #expect(try Self.merged([a, c]) == #"{"external_id":"A","attributes":{"tier":"gold","age":41,"prefs":{"lang":"de"}}}"#)
    }

    @Test func notAnObjectIsRefused() {
        #expect(RecordMerge.merge([Self.source(1, #"{"a":1"#)]) == nil)
        #expect(RecordMerge.merge([Self.source(1, #"["a"]"#)]) == nil)
        #expect(RecordMerge.merge([Self.source(1, #"{"a":1} x"#)]) == nil)
        #expect(JSONMembers.parse(Array(#"{"a":"x\"}","b":[1,{"c":"]"}]}"#.utf8))?.map { String(decoding: $0.value, as: UTF8.self) }
            == [#""x\"}""#, #"[1,{"c":"]"}]"#])
    }

    // MARK: In apply

    static func participant(_ id: String, _ fields: String) -> [UInt8] {
        Array(#"{"external_id":"\#(id)",\#(fields)}"#.utf8)
    }

    static func panelRecord(_ store: PanelStore, _ id: String, scope: String) throws -> [String: Any] {
        let r = try #require(try store.record(externalID: id, scope: scope))
        return try #require(try JSONSerialization.jsonObject(with: Data(r.record)) as? [String: Any])
    }

    @Test func aLinkedKeyFillsGapsAndANewerNullKeepsTheOtherKeysValue() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply([Change(externalID: "u1", commitVersion: 1,
                record: Self.participant("u1", #""first_name":"Ann","email":"a@x.io","phone":"+14155550101","contactable":true"#),
                email: "a@x.io", phone: "+14155550101")], scope: "crm", pipeline: "crm", checkpoint: nil)
            // The shop knows the email but no phone and no name, and a city.
            let o = try store.apply([Change(externalID: "77", commitVersion: 9,
                record: Self.participant("77", #""first_name":null,"email":"a@x.io","phone":null,"contactable":true,"attributes":{"city":"Bonn"}"#),
                email: "a@x.io")], scope: "shop", pipeline: "shop", checkpoint: nil)
            #expect(o == .init(linked: 1))
            var r = try Self.panelRecord(store, "u1", scope: "crm")
            #expect(r["first_name"] as? String == "Ann" && r["phone"] as? String == "+14155550101")
            #expect(r["external_id"] as? String == "u1" && (r["attributes"] as? [String: Any])?["city"] as? String == "Bonn")
            // The first key changes its name and drops its phone: the name changes, the phone is gone from both.
            _ = try store.apply([Change(externalID: "u1", commitVersion: 2,
                record: Self.participant("u1", #""first_name":"Anna","email":"a@x.io","phone":null,"contactable":true"#),
                email: "a@x.io")], scope: "crm", pipeline: "crm", checkpoint: nil)
            r = try Self.panelRecord(store, "77", scope: "shop")
            #expect(r["first_name"] as? String == "Anna" && r["phone"] is NSNull)
            #expect((r["attributes"] as? [String: Any])?["city"] as? String == "Bonn")
            // The shop withdraws; the crm's later opt-in does not make the participant contactable again.
            _ = try store.apply([Change(externalID: "77", commitVersion: 10,
                record: Self.participant("77", #""first_name":null,"email":"a@x.io","phone":null,"consent_status":"opted_out","contactable":false"#),
                email: "a@x.io", optedIn: false)], scope: "shop", pipeline: "shop", checkpoint: nil)
            _ = try store.apply([Change(externalID: "u1", commitVersion: 3,
                record: Self.participant("u1", #""first_name":"Anna","email":"a@x.io","phone":"+14155550101","consent_status":"opted_in","contactable":true"#),
                email: "a@x.io", phone: "+14155550101")], scope: "crm", pipeline: "crm", checkpoint: nil)
            r = try Self.panelRecord(store, "u1", scope: "crm")
            #expect(r["contactable"] as? Bool == false && r["consent_status"] as? String == "opted_out")
            #expect(r["phone"] as? String == "+14155550101" && r["first_name"] as? String == "Anna")
            // Every delivered line carries the participant's merged record.
            let lines = try deliveredLines(dir + "-out", try store.deliver(to: dir + "-out").files)
            defer { try? FileManager.default.removeItem(atPath: dir + "-out") }
            let last = try jsonObject(try #require(lines.last))
            let delivered = try #require(last["record"] as? [String: Any])
            #expect(delivered["contactable"] as? Bool == false && delivered["external_id"] as? String == "u1")
            #expect(last["external_id"] as? String == "u1" && last["scope"] as? String == "crm")
        }
    }

    /// The same rows applied as one batch, one row per batch, and in two halves give the same records and lines.
    @Test func theMergeDoesNotDependOnBatches() throws {
        var changes: [Change] = []
        let names = ["Ann", "Bob", nil]
        let phones = ["+14155550101", nil]
        for v in 1...30 {
            let key = ["k1", "k2", "k3"][v % 3]
            let name = names[(v / 3) % 3]
            let phone = phones[(v / 2) % 2]
            let opted = v % 7 != 0
            var fields = #""first_name":\#(name.map { "\"\($0)\"" } ?? "null"),"email":"a@x.io","#
            fields += #""phone":\#(phone.map { "\"\($0)\"" } ?? "null"),"contactable":\#(opted)"#
            changes.append(Change(externalID: key, commitVersion: Int64(v), record: Self.participant(key, fields),
                email: "a@x.io", phone: phone, optedIn: opted))
        }
        func outcome(_ batches: [[Change]]) throws -> ([String], [String]) {
            try withTemporaryDirectory { dir in
                let store = try PanelStore(directory: dir)
                for b in batches { _ = try store.apply(b, scope: "s", pipeline: "p", checkpoint: nil) }
                let records = try ["k1", "k2", "k3"].map {
                    String(decoding: try #require(try store.record(externalID: $0, scope: "s")).record, as: UTF8.self)
                }
                let lines = try deliveredLines(dir + "-out", try store.deliver(to: dir + "-out").files)
                try? FileManager.default.removeItem(atPath: dir + "-out")
                return (records, lines)
            }
        }
        let whole = try outcome([changes])
        #expect(try outcome(changes.map { [$0] }) == whole)
        #expect(try outcome([Array(changes[..<13]), Array(changes[13...])]) == whole)
        #expect(Set(whole.0).count == 1, "one participant: \(whole.0)")
    }
}

extension RecordMergeTests {
    /// A participant linked before `keyrecords` existed (no entries): the next change of a linked key takes the
    /// other keys' records from the participant's record at that moment, then merges as usual.
    @Test func aParticipantLinkedWithoutKeyRecordsGetsThemFromItsRecord() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply([
                Change(externalID: "u1", commitVersion: 1,
                    record: Self.participant("u1", #""first_name":"Ann","phone":"+14155550101","contactable":true"#), email: "a@x.io"),
                Change(externalID: "u2", commitVersion: 2,
                    record: Self.participant("u2", #""first_name":"Ann","phone":"+14155550101","contactable":true"#), email: "a@x.io"),
            ], scope: "crm", pipeline: "crm", checkpoint: nil)
            // What an older build left: links, no keyrecords.
            try store.environment.write { txn in
                var keys: [[UInt8]] = []
                try txn.forEach(store.keyRecords) { k, _ in
                    keys.append(Array(k))
                    return true
                }
                #expect(keys.count == 2)
                for k in keys { _ = try txn.delete(store.keyRecords, key: k) }
            }
            _ = try store.apply([Change(externalID: "u2", commitVersion: 3,
                record: Self.participant("u2", #""first_name":null,"phone":null,"contactable":true"#), email: "a@x.io")],
                scope: "crm", pipeline: "crm", checkpoint: nil)
            let r = try Self.panelRecord(store, "u1", scope: "crm")
            #expect(r["first_name"] as? String == "Ann" && r["phone"] as? String == "+14155550101", "\(r)")
            #expect(r["external_id"] as? String == "u1")
        }
    }
}
