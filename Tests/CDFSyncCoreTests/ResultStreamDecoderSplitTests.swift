import Testing
@testable import CDFSyncCore

/// Bodies whose every split must decode identically.
private let splitBodies: [(String, ResultStreamDecoder.Layout)] = [
    (#"{"statement_id":"01f0-x","status":{"state":"SUCCEEDED"},"manifest":{"format":"JSON_ARRAY","schema":{"column_count":3}},"result":{"chunk_index":0,"row_offset":0,"row_count":3,"data_array":[["1","a\"b\\c\/d\b\f\n\r\t",null],["-2","\u00e9\u20AC\ud83d\ude00","こんにちは 😀"],["3","",""]],"next_chunk_index":1,"next_chunk_internal_link":"/api/2.0/sql/statements/x/result/chunks/1"}}"#, .envelope),
    (#" { "chunk_index" : 2 , "data_array" : [ [ "x" , null ] , [ null , "y" ] ] , "note" : "data_array \" ] [ {" , "n" : [ 1.5e-3 , -0 , true , false , null ] } "#, .envelope),
    (#"[["a",null,"\u0041\u00DF\uD834\uDD1E"],["longer value to exercise the 8-byte scanner ........","é",""],["\"\"","\\\\",null]]"#, .bareArray),
    (#"{"statement_id":"s","status":{"state":"FAILED","error":{"error_code":"BAD_REQUEST","message":"\n[PARSE_SYNTAX_ERROR] at 'x'. SQLSTATE: 42601\n"}}}"#, .envelope),
]

@Suite("ResultStreamDecoder: splits")
struct ResultStreamDecoderSplitTests {
    @Test(arguments: 0..<splitBodies.count)
    func everySplitPointYieldsIdenticalRowsAndMetadata(index: Int) throws {
        let (text, layout) = splitBodies[index]
        let body = Array(text.utf8)
        let whole = try decode(body, layout: layout)
        for k in 0...body.count {
            let split = try decode(body, layout: layout, cuts: [k])
            #expect(split == whole, "split at \(k)")
        }
        #expect(try decodeByteByByte(body, layout: layout) == whole)
    }

    @Test(arguments: 0..<splitBodies.count)
    func everyPairOfSplitPoints(index: Int) throws {
        let (text, layout) = splitBodies[index]
        let body = Array(text.utf8)
        let whole = try decode(body, layout: layout)
        // Three pieces: every (a, b) with a ≤ b.
        for a in 0...body.count {
            for b in stride(from: a, through: body.count, by: 1) {
                let split = try decode(body, layout: layout, cuts: [a, b])
                if split != whole {
                    Issue.record("split at \(a),\(b)")
                    return
                }
            }
        }
    }

    @Test func expectedRowsForSplitBodies() throws {
        let first = try decode(splitBodies[0].0)
        #expect(first.rows == [
            ["1", "a\"b\\c/d\u{08}\u{0C}\n\r\t", nil], ["-2", "é€😀", "こんにちは 😀"], ["3", "", ""],
        ])
        #expect(first.metadataText == #"{"statement_id":"01f0-x","status":{"state":"SUCCEEDED"},"manifest":{"format":"JSON_ARRAY","schema":{"column_count":3}},"result":{"chunk_index":0,"row_offset":0,"row_count":3,"next_chunk_index":1,"next_chunk_internal_link":"/api/2.0/sql/statements/x/result/chunks/1"}}"#)
        let second = try decode(splitBodies[1].0)
        #expect(second.rows == [["x", nil], [nil, "y"]])
        #expect(second.metadataText == #"{"chunk_index":2,"note":"data_array \" ] [ {","n":[1.5e-3,-0,true,false,null]}"#)
        let fourth = try decode(splitBodies[3].0)
        #expect(fourth.rows.isEmpty)
        #expect(fourth.metadataText == splitBodies[3].0)
    }

    /// Random rows, serialised with random escape choices and whitespace, fed in random pieces.
    @Test func randomChunkingProperty() throws {
        var rng = SplitMix64(seed: 0xC0FFEE)
        for iteration in 0..<300 {
            let columns = Int.random(in: 0...6, using: &rng)
            let rowCount = Int.random(in: 0...8, using: &rng)
            var rows: [[String?]] = []
            for _ in 0..<rowCount {
                rows.append((0..<columns).map { _ in randomValue(&rng) })
            }
            let envelope = Bool.random(using: &rng)
            let text = serialise(rows, envelope: envelope, rng: &rng)
            let body = Array(text.utf8)
            var cuts: [Int] = []
            var pos = 0
            while true {
                pos += Int.random(in: 0...max(1, body.count / 3), using: &rng)
                if pos >= body.count { break }
                cuts.append(pos)
            }
            let layout: ResultStreamDecoder.Layout = envelope ? .envelope : .bareArray
            let decoded = try decode(body, layout: layout, expectedColumnCount: rowCount > 0 ? columns : nil, cuts: cuts)
            #expect(decoded.rows == rows, "iteration \(iteration): \(text) cuts \(cuts)")
            if envelope {
                #expect(decoded.metadataText == #"{"statement_id":"id","result":{"row_count":\#(rowCount),"x":"[]"}}"#)
            }
        }
    }
}

