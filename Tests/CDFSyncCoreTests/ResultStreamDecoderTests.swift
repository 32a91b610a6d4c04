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
}
