import Foundation
import Testing

import CDFSyncCore
@testable import CDFSyncStorage

/// Shaped records (keys kept once per shape, values in the record) must read back byte for byte.
@Suite struct RecordShapeTests {
    typealias Change = PanelStore.Change

    /// Splits `record` the way a batch does (first without keys to compare, then with its own keys).
    static func split(_ record: [UInt8]) -> (keys: [UInt8], values: [UInt8])? {
        record.withUnsafeBytes { r -> (keys: [UInt8], values: [UInt8])? in
            var out = [UInt8](repeating: 0xEE, count: r.count)
            guard let first = out.withUnsafeMutableBytes({
                RecordShape.split(r, into: $0.baseAddress!, comparingKeys: UnsafeRawBufferPointer(start: nil, count: 0))
            }) else { return nil }
            #expect(!first.keysMatch)
            let keys = RecordShape.keys(of: r)
            let again = out.withUnsafeMutableBytes { o in
                keys.withUnsafeBytes { RecordShape.split(r, into: o.baseAddress!, comparingKeys: $0) }
            }
            #expect(again?.keysMatch == true && again?.count == first.count)
            return (keys, Array(out[..<first.count]))
        }
    }

    /// Where each value of the record `keys` and `values` make sits in it (start and end offsets per value): the
    /// record is `{`, then per key its bytes, `:` and the value, separated by `,`, then `}`.
    static func valueRanges(keys: [UInt8], values: [UInt8]) -> [Int] {
        let parts = values.split(separator: RecordShape.separator, omittingEmptySubsequences: false)
        var out: [Int] = []
        var (k, o) = (0, 1)
        for part in parts {
            let n = Int(keys[k]) << 8 | Int(keys[k + 1])
            o += n + 1
            out += [o, o + part.count]
            o += part.count + 1
            k += 2 + n
        }
        return out
    }

    static func join(_ keys: [UInt8], _ values: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        let ok = keys.withUnsafeBytes { k in values.withUnsafeBytes { RecordShape.join(keys: k, values: $0, into: &out) } }
        return ok ? out : nil
    }

    /// A random JSON value: strings with escapes, quotes, braces, commas and non-ASCII; numbers; literals; nested
    /// objects and arrays.
    static func value(_ rng: inout SplitMix, depth: Int = 0) -> String {
        switch rng.next() % (depth < 2 ? 7 : 4) {
        case 0:
            let pieces = [#"a"#, #"\""#, #"\\"#, "é", "日本", "{", "}", ",", ":", "[", "]", #"\n"#, #"\u001f"#, " ", "x y"]
            return "\"" + (0..<Int(rng.next() % 6)).map { _ in pieces[Int(rng.next() % UInt64(pieces.count))] }.joined() + "\""
        case 1: return ["0", "-12", "3.25", "1e-7", "12345678901234567890"][Int(rng.next() % 5)]
        case 2: return ["true", "false", "null"][Int(rng.next() % 3)]
        case 3: return "\"v\(rng.next() % 1000)\""
        case 4, 5:
            let n = Int(rng.next() % 4)
            return "{" + (0..<n).map { i in "\"k\(i)\":" + value(&rng, depth: depth + 1) }.joined(separator: ",") + "}"
        default:
            let n = Int(rng.next() % 4)
            return "[" + (0..<n).map { _ in value(&rng, depth: depth + 1) }.joined(separator: ",") + "]"
        }
    }

    static func object(_ rng: inout SplitMix) -> [UInt8] {
        let keys = ["id", "first_name", "e\\\"mail", "ü", "a,b", "}", "", "n"]
        let n = Int(rng.next() % 6) + 1
        return bytes("{" + (0..<n).map { "\"\(keys[($0 + Int(rng.next() % 3)) % keys.count])\":" + value(&rng) }
            .joined(separator: ",") + "}")
    }

    @Test func splitThenJoinGivesTheRecordBackByteForByte() throws {
        var rng = SplitMix(11)
        for _ in 0..<5_000 {
            let record = Self.object(&rng)
            let parts = try #require(Self.split(record), "\(String(decoding: record, as: UTF8.self))")
            // Control bytes in the values are exactly the separators, one between two values.
            let keyCount = parts.keys.withUnsafeBytes { k in
                var (i, n) = (0, 0)
                while i < k.count { i += 2 + (Int(k[i]) << 8 | Int(k[i + 1])); n += 1 }
                return n
            }
            #expect(parts.values.filter { $0 < 0x20 } == [UInt8](repeating: RecordShape.separator, count: keyCount - 1))
            #expect(parts.values.count < record.count)
            #expect(Self.join(parts.keys, parts.values) == record, "\(String(decoding: record, as: UTF8.self))")
        }
    }

    @Test(arguments: [
        "{}", "[1]", #"{"a":1"#, #"{"a":1}x"#, #"{"a":1,}"#, #"{"a":}"#, #"{"a" :1}"#, #"{ "a":1}"#, #"{"a":1 }"#,
        "{\"a\":\"x\u{1F}y\"}", "{\"a\":\"x\\\u{1F}\"}", "{\"a\":\"x\ty\"}", #"{"a":"unterminated}"#, #"{"a":{"b":1}"#,
        #"{"a":[1,2}"#, #"{a:1}"#, #"{"a":1 ,"b":2}"#, #"{"a":tr ue}"#, #"{"a":"x""y"}"#,
    ])
    func recordsThatWouldNotJoinBackAreNotSplit(_ text: String) throws {
        #expect(Self.split(bytes(text)) == nil)
        // …and the store keeps them as given.
        guard text.hasPrefix("{") && text.hasSuffix("}") else { return }
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply([Change(externalID: "a", commitVersion: 1, record: bytes(text))], scope: "s",
                pipeline: "p", checkpoint: nil)
            #expect(try store.record(externalID: "a", scope: "s")?.record == bytes(text))
            #expect(try store.environment.read { try $0.count(store.shapesDB) } == 0)
        }
    }

    @Test func joinRefusesValuesThatDoNotFitTheShape() throws {
        let parts = try #require(Self.split(bytes(#"{"a":1,"b":"x","c":null}"#)))
        #expect(Self.join(parts.keys, parts.values) == bytes(#"{"a":1,"b":"x","c":null}"#))
        #expect(Self.join(parts.keys, Array(parts.values.dropLast(5))) == nil)  // a value short
        #expect(Self.join(parts.keys, parts.values + [RecordShape.separator, 0x31]) == nil)  // a value over
        #expect(Self.join(Array(parts.keys.dropLast()), parts.values) == nil)  // a truncated key
        #expect(Self.join([], parts.values) == nil)
    }

    /// The raw `panel` values of a store.
    static func panelValues(_ store: PanelStore) throws -> [[UInt8]] {
        try store.environment.read { txn in
            var values: [[UInt8]] = []
            try txn.forEach(store.panel) { _, v in
                values.append(Array(v))
                return true
            }
            return values
        }
    }

    @Test func recordsAreStoredShapedAndReadBackExactly() throws {
        try withTemporaryDirectory { dir in
            var rng = SplitMix(5)
            let records: [[UInt8]] = (0..<300).map { i in
                i % 3 == 0
                    ? bytes(#"{"id":"\#(i)","name":"n\#(i)","tags":["a","b"],"score":\#(i)}"#)
                    : Self.object(&rng)
            }
            let changes = records.enumerated().map { Change(externalID: "k\($0.offset)", commitVersion: 1, record: $0.element) }
            do {
                let store = try PanelStore(directory: dir)
                // Batches of 30 rows: fewer shapes than a batch may hold (see the next test).
                for start in stride(from: 0, to: changes.count, by: 30) {
                    _ = try store.apply(Array(changes[start..<(start + 30)]), scope: "s", pipeline: "p", checkpoint: nil)
                }
                for (i, r) in records.enumerated() {
                    #expect(try store.record(externalID: "k\(i)", scope: "s")?.record == r)
                }
                // One shape per distinct key list, each saved once; the values are shaped records.
                let distinct = Set(records.map { $0.withUnsafeBytes { RecordShape.keys(of: $0) } })
                #expect(try store.environment.read { try $0.count(store.shapesDB) } == distinct.count)
                let values = try Self.panelValues(store)
                let shaped = values.filter { v in v[2 + (Int(v[0]) << 8 | Int(v[1])) + 8] == RecordShape.tag }
                #expect(shaped.count == records.count)
                // Smaller than the records they stand for.
                #expect(values.reduce(0) { $0 + $1.count } < records.reduce(0) { $0 + $1.count } + 300 * 20)
            }
            // Read again after reopening (shapes loaded from the store), also by the whole-panel walk.
            let store = try PanelStore(directory: dir)
            var walked: [UInt64: [UInt8]] = [:]
            try store.forEachRecord(scope: "s") { walked[$0.participantID] = $0.record }
            #expect(walked.count == records.count)
            for (i, r) in records.enumerated() {
                let got = try #require(try store.record(externalID: "k\(i)", scope: "s"))
                #expect(got.record == r && walked[got.participantID] == r)
            }
        }
    }

    @Test func rowsOfShapesBeyondABatchsLimitAreStoredAsTheyAre() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            let n = PanelStore.ChangeBatch.maxShapesPerBatch + 10
            let records = (0..<n).map { bytes(#"{"f\#($0)":\#($0)}"#) }
            _ = try store.apply(records.enumerated().map { Change(externalID: "k\($0.offset)", commitVersion: 1, record: $0.element) },
                scope: "s", pipeline: "p", checkpoint: nil)
            #expect(try store.environment.read { try $0.count(store.shapesDB) } == PanelStore.ChangeBatch.maxShapesPerBatch)
            for (i, r) in records.enumerated() { #expect(try store.record(externalID: "k\(i)", scope: "s")?.record == r) }
        }
    }

    @Test func preparedAndUnpreparedBatchesStoreTheSameBytes() throws {
        try withTemporaryDirectory { dir in
            let all = ChangeBatchTests.changes(seed: 9, count: 1_200)
            let a = try PanelStore(directory: dir + "/a", durable: false)
            let b = try PanelStore(directory: dir + "/b", durable: false)
            let compressor = try ZstdCompressor(level: b.recordCompressionLevel)
            for start in stride(from: 0, to: all.count, by: 400) {
                let slice = Array(all[start..<(start + 400)])
                _ = try a.apply(slice, scope: "s", pipeline: "p", checkpoint: nil)
                // Prepared in two goes, with rows dropped from the shaped part in between.
                var batch = PanelStore.ChangeBatch()
                for c in slice[..<200] { batch.append(c) }
                try batch.prepare(compressor: compressor, threshold: b.recordCompressionThreshold)
                for c in ChangeBatchTests.changes(seed: 99, count: 30) { batch.append(c) }
                batch.truncate(to: 150)
                for c in slice[150...] { batch.append(c) }
                try batch.prepare(compressor: compressor, threshold: b.recordCompressionThreshold)
                #expect(batch.count == 400)
                _ = try b.apply(batch, scope: "s", pipeline: "p", checkpoint: nil)
            }
            #expect(try Self.panelValues(a) == Self.panelValues(b))
            #expect(try Self.panelValues(a).contains { $0.contains(RecordShape.tag) })
        }
    }

    /// A batch given each row's shaped form (as the engine's passthrough mapping writes it) stores what one that
    /// split the records itself does; plain rows appended before a pre-shaped one are stored as given.
    @Test func rowsAppendedWithTheirShapeStoreWhatSplittingThemStores() throws {
        try withTemporaryDirectory { dir in
            var rng = SplitMix(3)
            let shapes = (0..<3).map { _ in Self.object(&rng) }.map { $0.withUnsafeBytes { RecordShape.keys(of: $0) } }
            let records: [[UInt8]] = (0..<200).map { i in
                let keys = shapes[i % 3]
                var (k, fields) = (0, [String]())
                while k < keys.count {
                    let n = Int(keys[k]) << 8 | Int(keys[k + 1])
                    fields.append(String(decoding: keys[(k + 2)..<(k + 2 + n)], as: UTF8.self) + ":" + Self.value(&rng))
                    k += 2 + n
                }
                return bytes("{" + fields.joined(separator: ",") + "}")
            }
            var given = PanelStore.ChangeBatch()
            var split = PanelStore.ChangeBatch()
            for (i, r) in records.enumerated() {
                let parts = try #require(Self.split(r))
                #expect(parts.keys == shapes[i % 3])
                r.withUnsafeBytes { record in
                    Self.valueRanges(keys: parts.keys, values: parts.values).withUnsafeBufferPointer { ranges in
                        given.append(
                            externalID: "k\(i)", commitVersion: 1, record: record, shape: shapes[i % 3], valueRanges: ranges)
                    }
                    split.append(externalID: "k\(i)", commitVersion: 1, record: record)
                }
            }
            let a = try PanelStore(directory: dir + "/a", durable: false)
            let b = try PanelStore(directory: dir + "/b", durable: false)
            _ = try a.apply(given, scope: "s", pipeline: "p", checkpoint: nil)
            _ = try b.apply(split, scope: "s", pipeline: "p", checkpoint: nil)
            #expect(try Self.panelValues(a) == Self.panelValues(b))
            for (i, r) in records.enumerated() { #expect(try a.record(externalID: "k\(i)", scope: "s")?.record == r) }

            // Values of the wrong length for their keys: the row is stored as given.
            var wrong = PanelStore.ChangeBatch()
            let parts = try #require(Self.split(records[0]))
            records[0].withUnsafeBytes { record in
                // One value range only, for a shape of several keys.
                [1, 2].withUnsafeBufferPointer {
                    wrong.append(externalID: "w", commitVersion: 1, record: record, shape: parts.keys, valueRanges: $0)
                }
            }
            _ = try a.apply(wrong, scope: "w", pipeline: "p", checkpoint: nil)
            #expect(try a.record(externalID: "w", scope: "w")?.record == records[0])
            let wid = try #require(try a.participantID(externalID: "w", scope: "w"))
            let stored = try #require(try a.environment.read { try $0.get(a.panel, key: bytesBE(wid)) })
            #expect(stored[2 + (Int(stored[0]) << 8 | Int(stored[1])) + 8] == UInt8(ascii: "{"))

            // Two plain rows, then a pre-shaped one: the plain ones are stored as given.
            var mixed = PanelStore.ChangeBatch()
            for (i, r) in records.prefix(3).enumerated() {
                r.withUnsafeBytes { record in
                    if i < 2 {
                        mixed.append(externalID: "m\(i)", commitVersion: 1, record: record)
                    } else {
                        let parts = Self.split(r)!
                        Self.valueRanges(keys: parts.keys, values: parts.values).withUnsafeBufferPointer {
                            mixed.append(
                                externalID: "m\(i)", commitVersion: 1, record: record, shape: parts.keys, valueRanges: $0)
                        }
                    }
                }
            }
            _ = try a.apply(mixed, scope: "t", pipeline: "p", checkpoint: nil)
            for (i, r) in records.prefix(3).enumerated() {
                #expect(try a.record(externalID: "m\(i)", scope: "t")?.record == r)
                let pid = try #require(try a.participantID(externalID: "m\(i)", scope: "t"))
                let value = try #require(try a.environment.read { try $0.get(a.panel, key: bytesBE(pid)) })
                #expect(value[2 + (Int(value[0]) << 8 | Int(value[1])) + 8] == (i < 2 ? UInt8(ascii: "{") : RecordShape.tag))
            }
        }
    }

    @Test func aFailedBatchLeavesNoShapeBehind() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            let run = try store.appendRun(bytes("{}"))
            // The unknown run id fails the transaction after the shape and the row were written in it.
            #expect(throws: StorageError.self) {
                try store.apply([Change(externalID: "a", commitVersion: 1, record: bytes(#"{"x":1,"y":2}"#))],
                    scope: "s", pipeline: "p", checkpoint: nil, run: (run + 1, bytes("{}")))
            }
            #expect(try store.environment.read { try $0.count(store.shapesDB) } == 0)
            #expect(store.shapes.id(keys: bytes(#"{"x":1,"y":2}"#).withUnsafeBytes { RecordShape.keys(of: $0) }) == nil)
            _ = try store.apply([Change(externalID: "b", commitVersion: 1, record: bytes(#"{"p":1}"#))],
                scope: "s", pipeline: "p", checkpoint: nil)
            _ = try store.apply([Change(externalID: "a", commitVersion: 1, record: bytes(#"{"x":1,"y":2}"#))],
                scope: "s", pipeline: "p", checkpoint: nil)
            #expect(try store.environment.read { try $0.count(store.shapesDB) } == 2)
            #expect(try store.record(externalID: "a", scope: "s")?.record == bytes(#"{"x":1,"y":2}"#))
            #expect(try store.record(externalID: "b", scope: "s")?.record == bytes(#"{"p":1}"#))
        }
    }

    /// Shapes another writer saved after this store loaded its own: found by reads and reused by writes.
    @Test func shapesSavedByAnotherWriterAreReadAndReused() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply([Change(externalID: "a", commitVersion: 1, record: bytes(#"{"x":1}"#))],
                scope: "s", pipeline: "p", checkpoint: nil)
            let keys = bytes(#"{"m":"v","n":2}"#).withUnsafeBytes { RecordShape.keys(of: $0) }
            try store.environment.write { try $0.put(store.shapesDB, key: [0, 0, 0, 7], value: keys) }
            #expect(store.shapes.keys(id: 7) == nil)
            _ = try store.apply([Change(externalID: "b", commitVersion: 1, record: bytes(#"{"m":"v","n":2}"#))],
                scope: "s", pipeline: "p", checkpoint: nil)
            // The saved shape was reused (id 7), not saved again.
            #expect(try store.environment.read { try $0.count(store.shapesDB) } == 2)
            let value = try #require(try store.environment.read { try $0.get(store.panel, key: bytesBE(2)) })
            let at = 2 + (Int(value[0]) << 8 | Int(value[1])) + 8
            #expect(Array(value[at..<(at + 5)]) == [RecordShape.tag, 0, 0, 0, 7])
            // A record naming a shape this process has not loaded is read through the transaction.
            let other = bytes(#"{"q":true}"#).withUnsafeBytes { RecordShape.keys(of: $0) }
            try store.environment.write { txn in
                try txn.put(store.shapesDB, key: [0, 0, 0, 9], value: other)
                try txn.put(store.panel, key: bytesBE(2), value: Array(value[..<at]) + [RecordShape.tag, 0, 0, 0, 9] + bytes("false"))
            }
            #expect(try store.record(externalID: "b", scope: "s")?.record == bytes(#"{"q":false}"#))
            #expect(store.shapes.keys(id: 9) == other)
        }
    }

    @Test func aRecordNamingAMissingShapeOrNotFittingItIsReportedAsCorrupted() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir)
            _ = try store.apply([Change(externalID: "a", commitVersion: 1, record: bytes(#"{"x":1,"y":2}"#))],
                scope: "s", pipeline: "p", checkpoint: nil)
            let value = try #require(try store.environment.read { try $0.get(store.panel, key: bytesBE(1)) })
            let at = 2 + (Int(value[0]) << 8 | Int(value[1])) + 8
            for (body, words) in [
                ([RecordShape.tag, 0, 0, 0, 42] + bytes("1\u{1F}2"), "shape 42"),
                (Array(Array(value[at...]).dropLast(2)), "does not fit its shape"),
                ([RecordShape.tag, 0, 0], "truncated"),
            ] {
                try store.environment.write { try $0.put(store.panel, key: bytesBE(1), value: Array(value[..<at]) + body) }
                let error = try #require(throws: StorageError.self) { try store.record(externalID: "a", scope: "s") }
                #expect(error.code == .corrupted)
                #expect(error.message.contains(words) && error.message.contains("participant 1"), "\(error.message)")
            }
        }
    }

    @Test func aLayoutTwoStoreIsUpgradedInPlace() throws {
        try withTemporaryDirectory { dir in
            do {
                let store = try PanelStore(directory: dir)
                // A record as layout 2 stored it: plain JSON.
                _ = try store.apply([Change(externalID: "a", commitVersion: 1, record: bytes("{}"))], scope: "s",
                    pipeline: "p", checkpoint: nil)
                try store.environment.write { try $0.put(store.meta, key: MetaKey.formatVersion, value: bytes("2")) }
            }
            let store = try PanelStore(directory: dir)
            #expect(try store.environment.read { try $0.get(store.meta, key: MetaKey.formatVersion) } == bytes("3"))
            #expect(try store.record(externalID: "a", scope: "s")?.record == bytes("{}"))
            _ = try store.apply([Change(externalID: "b", commitVersion: 1, record: bytes(#"{"x":1}"#))], scope: "s",
                pipeline: "p", checkpoint: nil)
            #expect(try store.record(externalID: "b", scope: "s")?.record == bytes(#"{"x":1}"#))
        }
    }
}
