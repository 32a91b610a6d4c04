import Testing
@testable import CDFSyncCore

@Suite("ResultStreamDecoder: values and shapes")
struct ResultStreamDecoderValueTests {
    @Test func decodesStatementResponseRowsAndStripsDataArray() throws {
        let body = #"{"statement_id":"s1","status":{"state":"SUCCEEDED"},"result":{"chunk_index":0,"row_count":3,"data_array":[["1","a"],["2",null],["3",""]],"next_chunk_index":1}}"#
        let d = try decode(body)
        #expect(d.rows == [["1", "a"], ["2", nil], ["3", ""]])
        #expect(d.metadataText == #"{"statement_id":"s1","status":{"state":"SUCCEEDED"},"result":{"chunk_index":0,"row_count":3,"next_chunk_index":1}}"#)
    }

    @Test func rowsWithoutEscapesAreVerbatim() throws {
        // Only a row with an escape in one of its values loses the flag, and the next row gets it back; a split
        // inside the escape (or just after it) changes nothing.
        let text = #"[["a","b"],["c\nd",null],["é","x"],["\u0041","y"],["",null],["z\\",""]]"#
        let whole = try decode(text, layout: .bareArray)
        #expect(whole.verbatim == [true, false, true, false, true, false])
        for k in 0...text.utf8.count {
            #expect(try decode(text, layout: .bareArray, cuts: [k]).verbatim == whole.verbatim, "split at \(k)")
        }
    }

    @Test func decodesEveryEscape() throws {
        let body = #"[["\"", "\\", "\/", "\b", "\f", "\n", "\r", "\t", "a\u0041b", "\u00e9\u00E9", "\u20ac", "\u0000", "x\"y\\z"]]"#
        let d = try decode(body, layout: .bareArray)
        #expect(d.rows == [["\"", "\\", "/", "\u{08}", "\u{0C}", "\n", "\r", "\t", "aAb", "éé", "€", "\u{0}", "x\"y\\z"]])
        #expect(d.metadata == [])
    }

    @Test func combinesSurrogatePairsIntoOneCodePoint() throws {
        let d = try decode(#"[["\ud83d\ude00", "a\uD834\uDD1Eb", "\udbff\udfff"]]"#, layout: .bareArray)
        #expect(d.rows == [["😀", "a𝄞b", "\u{10FFFF}"]])
        var decoder = ResultStreamDecoder(layout: .bareArray)
        var raw: [UInt8] = []
        try Array(#"[["\ud83d\ude00"]]"#.utf8).withUnsafeBytes { b in
            try decoder.feed(b) { row in raw = row.bytes(0)! }
        }
        #expect(raw == [0xF0, 0x9F, 0x98, 0x80])
    }

    @Test func passesRawMultiByteUTF8Through() throws {
        let values = ["こんにちは", "😀 emoji", "é", "Ω≈ç√", "mixed ascii 日本 text that is long enough for the 8-byte path"]
        let body = "[" + "[" + values.map { "\"\($0)\"" }.joined(separator: ",") + "]" + "]"
        let d = try decode(body, layout: .bareArray)
        #expect(d.rows == [values])
    }

    @Test func distinguishesNullFromEmptyString() throws {
        var decoder = ResultStreamDecoder(layout: .bareArray)
        var checks: [Bool] = []
        try Array(#"[[null,"",null,"x"]]"#.utf8).withUnsafeBytes { b in
            try decoder.feed(b) { row in
                checks = [row.isNull(0), row.isNull(1), row.isNull(2), row.isNull(3)]
                #expect(row.withValue(0) { $0.count } == nil)
                #expect(row.withValue(1) { $0.count } == 0)
                #expect(row.string(3) == "x")
            }
        }
        _ = try decoder.finish()
        #expect(checks == [true, false, true, false])
    }

    @Test func allowsWhitespaceEverywhereJSONDoes() throws {
        let body = " \n{ \"statement_id\" : \"s\" ,\r\n \"result\" :\t{ \"data_array\" : [ [ \"a\" , null ] ,\n [ \"\" ,\"b\"\t] ] , \"row_count\" : 2 } , \"x\" : [ 1 , true , null , { } , [ ] ] } \n\t"
        let d = try decode(body)
        #expect(d.rows == [["a", nil], ["", "b"]])
        #expect(d.metadataText == #"{"statement_id":"s","result":{"row_count":2},"x":[1,true,null,{},[]]}"#)
    }

    @Test func envelopeNumbersAndEscapesAreCopiedExactly() throws {
        let body = #"{"n":[0,-0,12,-3.25,1e5,2E-3,6.02e+23,-0.0],"s":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00","k\"ey":1}"#
        let d = try decode(body)
        #expect(d.metadataText == body)
    }

    @Test func emptyDataArrayAndMissingDataArray() throws {
        let empty = try decode(#"{"result":{"row_count":0,"data_array":[]}}"#)
        #expect(empty.rows.isEmpty)
        #expect(empty.metadataText == #"{"result":{"row_count":0}}"#)
        let missing = try decode(#"{"statement_id":"s","status":{"state":"PENDING"}}"#)
        #expect(missing.rows.isEmpty)
        #expect(missing.metadataText == #"{"statement_id":"s","status":{"state":"PENDING"}}"#)
        let emptyObject = try decode("{}")
        #expect(emptyObject.metadataText == "{}")
        let nullArray = try decode(#"{"data_array":null,"a":1}"#)
        #expect(nullArray.rows.isEmpty)
        #expect(nullArray.metadataText == #"{"a":1}"#)
        let emptyRows = try decode("[[],[]]", layout: .bareArray)
        #expect(emptyRows.rows == [[], []])
        #expect(try decode(" [ ] ", layout: .bareArray).rows.isEmpty)
    }

    @Test func findsTopLevelDataArrayInChunkResponse() throws {
        let body = #"{"data_array":[["1"],["2"]],"chunk_index":1,"row_offset":2,"row_count":2,"next_chunk_index":2}"#
        let d = try decode(body)
        #expect(d.rows == [["1"], ["2"]])
        #expect(d.metadataText == #"{"chunk_index":1,"row_offset":2,"row_count":2,"next_chunk_index":2}"#)
    }

    @Test func skipsTrickyMembersAroundDataArray() throws {
        let body = #"{"note":"\"data_array\":[[\"no\"]] ] } [","data_array_x":[["keep"]],"manifest":{"data_array":[["not rows"]],"s":"\\"},"result":{"a":"]","data_array":[["yes","\\\"]"]],"b":"[\"data_array\""}}"#
        let d = try decode(body)
        #expect(d.rows == [["yes", "\\\"]"]])
        #expect(d.metadataText == #"{"note":"\"data_array\":[[\"no\"]] ] } [","data_array_x":[["keep"]],"manifest":{"data_array":[["not rows"]],"s":"\\"},"result":{"a":"]","b":"[\"data_array\""}}"#)
    }

    @Test func dataArrayInsideNestedResultIsNotRows() throws {
        // Only the top-level object and the top-level "result" object may hold rows.
        let body = #"{"x":{"result":{"data_array":[["n"]]}},"result":[{"data_array":[["m"]]}]}"#
        let d = try decode(body)
        #expect(d.rows.isEmpty)
        #expect(d.metadataText == body)
    }

    @Test func int64FastPath() throws {
        var decoder = ResultStreamDecoder(layout: .bareArray)
        var got: [Int64?] = []
        let body = #"[["0","42","-7","+5","9223372036854775807","-9223372036854775808","9223372036854775808","12a","",null,"-"]]"#
        try Array(body.utf8).withUnsafeBytes { b in
            try decoder.feed(b) { row in got = (0..<row.count).map { row.int64($0) } }
        }
        #expect(got == [0, 42, -7, 5, .max, .min, nil, nil, nil, nil, nil])
    }

    @Test func expectedColumnCountCanBeSetLater() throws {
        var decoder = ResultStreamDecoder(layout: .bareArray)
        decoder.setExpectedColumnCount(2)
        #expect(decoder.expectedColumnCount == 2)
        var n = 0
        try Array(#"[["a","b"]]"#.utf8).withUnsafeBytes { b in try decoder.feed(b) { _ in n += 1 } }
        _ = try decoder.finish()
        #expect(n == 1)
    }

    @Test func rowHandlerErrorStopsTheDecoder() throws {
        struct Stop: Error {}
        var decoder = ResultStreamDecoder(layout: .bareArray)
        var seen = 0
        let body = Array(#"[["a"],["b"],["c"]]"#.utf8)
        #expect(throws: Stop.self) {
            try body.withUnsafeBytes { b in
                try decoder.feed(b) { _ in
                    seen += 1
                    if seen == 2 { throw Stop() }
                }
            }
        }
        #expect(seen == 2)
        #expect(throws: JSONArrayDecodingError.self) { _ = try decoder.finish() }
    }

    @Test func largeValuesGrowTheScratchBuffer() throws {
        let big = String(repeating: "x", count: 100_000) + "\\n" + String(repeating: "é", count: 5000)
        let columns = (0..<300).map { "\"v\($0)\"" }.joined(separator: ",")
        let d = try decode("[[\"\(big)\"],[\"\(big)\"]]", layout: .bareArray)
        #expect(d.rows.count == 2 && d.rows[0].count == 1 && d.rows[0] == d.rows[1])
        #expect(d.rows[0][0]!.utf8.count == 100_000 + 1 + 10_000)
        let wide = try decode("[[\(columns)],[\(columns)]]", layout: .bareArray, expectedColumnCount: 300)
        #expect(wide.rows.count == 2 && wide.rows[1].count == 300 && wide.rows[1][299] == "v299")
    }
}

@Suite("ResultStreamDecoder: errors")
struct ResultStreamDecoderErrorTests {
    @Test func truncatedBodyFailsInFinishAtEveryPrefix() throws {
        let body = Array(#"{"result":{"data_array":[["a\u00e9\ud83d\ude00",null],["x","y"]]},"n":-1.5e3,"t":true}"#.utf8)
        for k in 0..<body.count {
            var decoder = ResultStreamDecoder(layout: .envelope)
            try body[0..<k].withUnsafeBytes { try decoder.feed($0) { _ in } }
            #expect(throws: JSONArrayDecodingError(byteOffset: k, rowIndex: decoder.rowCount, reason: "truncated JSON")) {
                _ = try decoder.finish()
            }
        }
        #expect(try decode(body).rows.count == 2)
    }

    @Test func wrongValueCountAgainstExpected() {
        let e = decodingError(#"[["a","b","c"],["d","e"]]"#, layout: .bareArray, expectedColumnCount: 3)
        #expect(e == JSONArrayDecodingError(byteOffset: 23, rowIndex: 1, reason: "row has 2 values, expected 3"))
        let first = decodingError(#"[["a","b","c"]]"#, layout: .bareArray, expectedColumnCount: 4)
        #expect(first == JSONArrayDecodingError(byteOffset: 13, rowIndex: 0, reason: "row has 3 values, expected 4"))
    }

    @Test func rowsOfOneBodyMustAgree() {
        let e = decodingError(#"{"data_array":[["a","b"],["c","d"],["e"]]}"#)
        #expect(e?.rowIndex == 2)
        #expect(e?.byteOffset == 39)
        #expect(e?.reason.hasPrefix("row has 1 value, expected 2") == true)
    }

    @Test(arguments: [
        (#"[["a",1]]"#, 6, "value is a number; JSON_ARRAY values must be strings or null"),
        (#"[["a",-1]]"#, 6, "value is a number; JSON_ARRAY values must be strings or null"),
        (#"[[true]]"#, 2, "value is a boolean; JSON_ARRAY values must be strings or null"),
        (#"[["x"],[false]]"#, 8, "value is a boolean; JSON_ARRAY values must be strings or null"),
        (#"[[{"a":"b"}]]"#, 2, "value is an object; JSON_ARRAY values must be strings or null"),
        (#"[[["a"]]]"#, 2, "value is an array; JSON_ARRAY values must be strings or null"),
        (#"[[nul]]"#, 5, "invalid literal (expected null); JSON_ARRAY values must be strings or null"),
    ])
    func nonStringValues(body: String, offset: Int, reason: String) {
        let e = decodingError(body, layout: .bareArray)
        #expect(e?.byteOffset == offset)
        #expect(e?.reason == reason)
    }

    @Test func errorRowIndexCountsCompletedRows() {
        let e = decodingError(#"{"result":{"data_array":[["1"],["2"],["3",4]]}}"#)
        #expect(e?.rowIndex == 2)
        #expect(e?.byteOffset == 42)
    }

    @Test(arguments: [
        (#"[["\ud83d"]]"#, "lone high surrogate in a \\u escape"),
        (#"[["\ud83dx"]]"#, "lone high surrogate in a \\u escape"),
        (#"[["\ud83d\n"]]"#, "lone high surrogate in a \\u escape"),
        (#"[["\ud83d\u0041"]]"#, "lone high surrogate in a \\u escape"),
        (#"[["\ude00"]]"#, "lone low surrogate in a \\u escape"),
        (#"[["\x"]]"#, "invalid escape '\\'x'' in a string"),
        (#"[["\u12g4"]]"#, "invalid hex digit 'g' in a \\u escape"),
    ])
    func badEscapes(body: String, reason: String) {
        #expect(decodingError(body, layout: .bareArray)?.reason == reason)
    }

    @Test func rawControlCharacterInString() {
        let e = decodingError("[[\"a\nb\"]]", layout: .bareArray)
        #expect(e?.byteOffset == 4)
        #expect(e?.reason == "unescaped control character 0x0A in a string")
    }

    @Test(arguments: [
        ("[[\"a\"]] x", 8, ResultStreamDecoder.Layout.bareArray),
        ("{\"a\":1}}", 7, .envelope),
        ("[\"a\"]", 1, .bareArray),
        ("x", 0, .bareArray),
        ("[[\"a\"]]", 0, .envelope),
        ("{\"a\" 1}", 5, .envelope),
        ("{\"a\":1,}", 7, .envelope),
        ("{\"a\":[1,]}", 8, .envelope),
        ("{\"a\":]}", 5, .envelope),
        ("{\"a\":[}", 6, .envelope),
        ("{\"a\":nope}", 5, .envelope),
        ("{\"data_array\":\"x\"}", 14, .envelope),
        ("{\"data_array\":[[\"a\"] [\"b\"]]}", 21, .envelope),
        ("[[\"a\" \"b\"]]", 6, .bareArray),
        ("[[\"a\",]]", 6, .bareArray),
        ("[[,\"a\"]]", 2, .bareArray),
        ("{\"a\":01}", 6, .envelope),
        ("{\"a\":1.}", 7, .envelope),
        ("{\"a\":-}", 6, .envelope),
        ("{\"a\":1e}", 7, .envelope),
        ("{\"a\":1e+}", 8, .envelope),
        ("{\"a\":\"\\x\"}", 7, .envelope),
        ("{\"a\\q\":1}", 4, .envelope),
        ("{\"a\":\"\\ud800\"}", 12, .envelope),
        ("{\"a\":\"\\udc00\"}", 6, .envelope),
        ("{\"a\":\"\\u12x4\"}", 10, .envelope),
        ("{\"a\":\"x\ny\"}", 7, .envelope),
    ])
    func garbage(body: String, offset: Int, layout: ResultStreamDecoder.Layout) {
        let e = decodingError(body, layout: layout)
        #expect(e != nil)
        #expect(e?.byteOffset == offset, "\(body): \(String(describing: e))")
    }

    @Test func errorIsStickyAndIndependentOfSplits() {
        let bodies = [
            #"{"result":{"data_array":[["a","b"],["c",12]]}}"#,
            #"[["ok"],["\ud800\u0020"]]"#,
            #"{"result":{"data_array":[["a","b"],["c"]]}}"#,
            #"[["a\u00e9"],["b"]] ]"#,
        ]
        for body in bodies {
            let layout: ResultStreamDecoder.Layout = body.hasPrefix("{") ? .envelope : .bareArray
            guard let whole = decodingError(body, layout: layout) else {
                Issue.record("no error for \(body)")
                continue
            }
            for k in 0...body.utf8.count {
                #expect(decodingError(body, layout: layout, cuts: [k]) == whole, "split at \(k) of \(body)")
            }
            #expect(decodingError(body, layout: layout, cuts: Array(0..<body.utf8.count)) == whole)
        }
    }
}

@Suite("ResultStreamDecoder: onRowsBegin")
struct ResultStreamDecoderRowsBeginTests {
    @Test func reportsManifestBeforeTheFirstRowAtEverySplit() throws {
        let text = #"{"statement_id":"s","status":{"state":"SUCCEEDED"},"manifest":{"format":"JSON_ARRAY","schema":{"column_count":1,"columns":[{"name":"id","type_text":"INT","type_name":"INT","position":0}]},"total_chunk_count":1,"total_row_count":2},"result":{"chunk_index":0,"data_array":[["1"],["2"]],"row_count":2}}"#
        let body = Array(text.utf8)
        for k in 0...body.count {
            var decoder = ResultStreamDecoder(layout: .envelope)
            var events: [String] = []
            var partial: [UInt8] = []
            for piece in [body[0..<k], body[k...]] {
                try piece.withUnsafeBytes { b in
                    try decoder.feed(b, onRowsBegin: { partial = $0; events.append("begin") },
                                     onRow: { events.append($0.string(0)!) })
                }
            }
            #expect(events == ["begin", "1", "2"], "split at \(k)")
            let early = try APIJSON.decode(StatementResponse.self, from: partial)
            #expect(early.manifest?.schema.columns?.first?.name == "id")
            #expect(early.result == ResultData(chunkIndex: 0))
            let full = try APIJSON.decode(StatementResponse.self, from: try decoder.finish())
            #expect(full.result?.rowCount == 2)
        }
    }

    @Test func notCalledWithoutDataArrayOrForBareArrays() throws {
        for (text, layout) in [(#"{"statement_id":"s","status":{"state":"PENDING"}}"#, ResultStreamDecoder.Layout.envelope),
                               (#"[["a"]]"#, .bareArray)] {
            var decoder = ResultStreamDecoder(layout: layout)
            var calls = 0
            try Array(text.utf8).withUnsafeBytes { b in
                try decoder.feed(b, onRowsBegin: { _ in calls += 1 }, onRow: { _ in })
            }
            _ = try decoder.finish()
            #expect(calls == 0)
        }
        var chunk = ResultStreamDecoder(layout: .envelope)
        var partial: [UInt8] = []
        try Array(#"{"chunk_index":3,"row_offset":10,"data_array":[],"next_chunk_index":4}"#.utf8).withUnsafeBytes { b in
            try chunk.feed(b, onRowsBegin: { partial = $0 }, onRow: { _ in })
        }
        #expect(String(decoding: partial, as: UTF8.self) == #"{"chunk_index":3,"row_offset":10}"#)
    }
}

@Suite("ResultStreamDecoder: value semantics")
struct ResultStreamDecoderValueSemanticsTests {
    /// A copy taken mid-row (scratch half full) continues independently of the original.
    @Test func copiesAreIndependent() throws {
        let body = Array(#"{"result":{"data_array":[["first","sec"#.utf8)
        let rest1 = Array(#"ond"],["x",null]]},"a":1}"#.utf8)
        let rest2 = Array(#"ONDLONGER_TO_FORCE_GROWTH_\#(String(repeating: "z", count: 10_000))"]]},"b":2}"#.utf8)
        var original = ResultStreamDecoder(layout: .envelope)
        var rows1: [[String?]] = []
        try body.withUnsafeBytes { b in try original.feed(b) { rows1.append($0.strings()) } }
        var copy = original
        var rows2 = rows1
        try rest2.withUnsafeBytes { b in try copy.feed(b) { rows2.append($0.strings()) } }
        try rest1.withUnsafeBytes { b in try original.feed(b) { rows1.append($0.strings()) } }
        #expect(rows1 == [["first", "second"], ["x", nil]])
        #expect(rows2 == [["first", "secONDLONGER_TO_FORCE_GROWTH_" + String(repeating: "z", count: 10_000)]])
        #expect(String(decoding: try original.finish(), as: UTF8.self) == #"{"result":{},"a":1}"#)
        #expect(String(decoding: try copy.finish(), as: UTF8.self) == #"{"result":{},"b":2}"#)
        #expect(original.rowCount == 2 && copy.rowCount == 1)
    }

    @Test func feedingAfterFinishIsAnError() throws {
        var decoder = ResultStreamDecoder(layout: .bareArray)
        try Array("[]".utf8).withUnsafeBytes { b in try decoder.feed(b) { _ in } }
        #expect(try decoder.finish() == [])
        #expect(throws: JSONArrayDecodingError.self) {
            try Array(" ".utf8).withUnsafeBytes { b in try decoder.feed(b) { _ in } }
        }
        // Empty pieces are fine at any time before finish.
        var other = ResultStreamDecoder(layout: .bareArray)
        try other.feed(UnsafeRawBufferPointer(start: nil, count: 0)) { _ in }
        #expect(other.bytesConsumed == 0)
    }
}

@Suite("ResultStreamDecoder: UTF-8")
struct ResultStreamDecoderUTF8Tests {
    /// Decodes `[["ok", <value>, null]]` where the value's bytes are given raw; returns the error, if any.
    func decodeRaw(_ value: [UInt8], splitEvery: Int? = nil) -> JSONArrayDecodingError? {
        let body = Array(#"[["ok",""#.utf8) + value + Array(#"",null]]"#.utf8)
        var decoder = ResultStreamDecoder(layout: .bareArray)
        do {
            var i = 0
            let step = splitEvery ?? body.count
            while i < body.count {
                let piece = Array(body[i..<min(body.count, i + step)])
                try piece.withUnsafeBytes { try decoder.feed($0) { _ in } }
                i += step
            }
            _ = try decoder.finish()
            return nil
        } catch let e as JSONArrayDecodingError {
            return e
        } catch {
            Issue.record("unexpected \(error)")
            return nil
        }
    }

    @Test(arguments: [
        [0x80],                      // a continuation byte alone
        [0xC0, 0xAF],                // overlong "/"
        [0xC1, 0x81],                // overlong
        [0xE0, 0x80, 0xAF],          // overlong 3-byte form
        [0xED, 0xA0, 0x80],          // UTF-16 surrogate D800
        [0xF0, 0x8F, 0xBF, 0xBF],    // overlong 4-byte form
        [0xF4, 0x90, 0x80, 0x80],    // above U+10FFFF
        [0xF5, 0x80, 0x80, 0x80],    // never a lead byte
        [0xC3],                      // truncated sequence at the end of a value
        [0x61, 0xE2, 0x82],          // truncated 3-byte sequence
        [0xFF, 0x61],
    ] as [[UInt8]])
    func invalidUTF8FailsTheBodyNamingTheValue(_ bytes: [UInt8]) {
        let e = decodeRaw(bytes)
        #expect(e?.reason == "value 2 of the row is not valid UTF-8", "\(bytes)")
        // However the bytes were cut into pieces.
        #expect(decodeRaw(bytes, splitEvery: 1)?.reason == "value 2 of the row is not valid UTF-8")
    }

    @Test func wellFormedMultiByteValuesPass() {
        for text in ["é", "€", "😀", "\u{10FFFF}", "\u{D7FF}", "\u{E000}", "日本語", "a b"] {
            #expect(decodeRaw(Array(text.utf8)) == nil, "\(text)")
            #expect(decodeRaw(Array(text.utf8), splitEvery: 1) == nil, "\(text)")
        }
    }

    @Test func theValidatorAgreesWithTheStandardLibrary() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 6)
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next() >> (rng.next() % 2 == 0 ? 0 : 1)) | 0x80 * UInt8(rng.next() % 2) }
            let ours = bytes.withUnsafeBytes { $0.firstInvalidUTF8Offset() } == nil
            #expect(ours == (String(validating: bytes, as: UTF8.self) != nil), "\(bytes)")
        }
    }
}
