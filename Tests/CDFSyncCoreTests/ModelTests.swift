import CDFSyncCore
import Testing

private func decodeJSON<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
    try APIJSON.decode(type, from: Array(text.utf8))
}

@Suite("Response models")
struct ModelTests {
    @Test func errorCodeNumberOrString() throws {
        let numeric = try decodeJSON(APIErrorBody.self, #"{"error_code":403,"message":"Invalid access token."}"#)
        #expect(numeric.errorCode == .number(403))
        #expect(numeric.errorCode?.description == "403")
        #expect(numeric.errorCode?.numberValue == 403 && numeric.errorCode?.stringValue == nil)
        let text = try decodeJSON(APIErrorBody.self, #"{"error_code":"RESOURCE_EXHAUSTED","message":"slow down"}"#)
        #expect(text.errorCode == .string("RESOURCE_EXHAUSTED"))
        #expect(text.errorCode?.stringValue == "RESOURCE_EXHAUSTED")
        let old = try decodeJSON(APIErrorBody.self, #"{"error":"Bad Request"}"#)
        #expect(old.errorCode == nil && old.text == "Bad Request")
        let status = try decodeJSON(StatementStatus.self, #"{"state":"FAILED","error":{"error_code":500,"message":"x"},"sql_state":"XX000"}"#)
        #expect(status.error?.errorCode == .number(500))
        #expect(status.sqlState == "XX000")
        #expect(throws: (any Error).self) { try decodeJSON(APIErrorBody.self, #"{"error_code":true}"#) }
    }

    @Test func int64FieldsAcceptNumericStrings() throws {
        let manifest = try decodeJSON(ResultManifest.self, #"{"format":"JSON_ARRAY","schema":{"column_count":"2","columns":[{"name":"a","type_text":"BIGINT","type_name":"LONG","position":"0"},{"name":"b","type_text":"DECIMAL(10,2)","type_name":"DECIMAL","position":1,"type_precision":"10","type_scale":2}]},"total_chunk_count":"3","chunks":[{"chunk_index":"0","row_offset":"0","row_count":"9007199254740993","byte_count":" 12 "}],"total_row_count":"9007199254740993","total_byte_count":12,"truncated":false}"#)
        #expect(manifest.schema.columnCount == 2)
        #expect(manifest.totalChunkCount == 3)
        #expect(manifest.totalRowCount == 9_007_199_254_740_993)
        #expect(manifest.chunks?.first?.rowCount == 9_007_199_254_740_993)
        #expect(manifest.chunks?.first?.byteCount == 12)
        #expect(manifest.schema.columns?[1].typePrecision == 10)
        let data = try decodeJSON(ResultData.self, #"{"chunk_index":"1","row_offset":"100","row_count":50,"next_chunk_index":"2","next_chunk_internal_link":"/api/2.0/sql/statements/s/result/chunks/2?row_offset=150"}"#)
        #expect(data.rowOffset == 100 && data.rowCount == 50 && data.nextChunkIndex == 2)
        #expect(throws: (any Error).self) { try decodeJSON(ChunkInfo.self, #"{"chunk_index":"one","row_offset":0,"row_count":1}"#) }
        #expect(throws: (any Error).self) { try decodeJSON(ChunkInfo.self, #"{"chunk_index":0,"row_offset":"1.5","row_count":1}"#) }
    }

    @Test func unknownFieldsAreIgnoredAndUnknownStatesKept() throws {
        let r = try decodeJSON(StatementResponse.self, #"{"statement_id":"s","status":{"state":"QUEUED_SOMEWHERE","extra":1},"manifest":{"format":"ARROW_STREAM","schema":{"column_count":0},"total_chunk_count":0,"total_row_count":0,"result_compression":"LZ4_FRAME","future":{"a":[1]}},"result":{"attachment":"AAAA","is_volume_operation":false},"new_top_level":null}"#)
        #expect(r.status?.state.rawValue == "QUEUED_SOMEWHERE")
        #expect(r.status?.state.isTerminal == false)
        #expect(r.manifest?.schema.columns == nil)
        #expect(r.result == ResultData())
        #expect(StatementState.succeeded.isTerminal && StatementState.closed.isTerminal && !StatementState.running.isTerminal)
    }

    @Test func externalLinkWithHeaders() throws {
        let data = try decodeJSON(ResultData.self, #"{"external_links":[{"external_link":"https://bucket/x?sig=1","expiration":"2024-11-08T15:20:17.922Z","chunk_index":0,"row_offset":0,"row_count":"10","byte_count":100,"next_chunk_index":1,"next_chunk_internal_link":"/api/2.0/sql/statements/s/result/chunks/1","http_headers":{"x-amz-server-side-encryption-customer-key":"k"}}]}"#)
        let link = try #require(data.externalLinks?.first)
        #expect(link.rowCount == 10)
        #expect(link.httpHeaders == ["x-amz-server-side-encryption-customer-key": "k"])
        #expect(link.expiration == "2024-11-08T15:20:17.922Z")
    }

    @Test func oauthBodies() throws {
        let e = try decodeJSON(OAuthErrorBody.self, #"{"error":"invalid_client","error_description":"Client authentication failed"}"#)
        #expect(e.error == "invalid_client" && e.errorDescription == "Client authentication failed")
        let t = try decodeJSON(OAuthTokenResponse.self, #"{"access_token":"eyJ","token_type":"Bearer","expires_in":"3600","scope":"all-apis"}"#)
        #expect(t.expiresIn == 3600 && t.accessToken == "eyJ")
    }

    @Test func responsesRoundTripThroughEncoding() throws {
        let response = StatementResponse(
            statementID: "s",
            status: StatementStatus(state: .succeeded),
            manifest: ResultManifest(
                format: "JSON_ARRAY",
                schema: ResultSchema(columnCount: 1, columns: [ColumnInfo(name: "id", typeText: "BIGINT", typeName: .long, position: 0)]),
                totalChunkCount: 1, chunks: [ChunkInfo(chunkIndex: 0, rowOffset: 0, rowCount: 1)], totalRowCount: 1,
                truncated: false),
            result: ResultData(chunkIndex: 0, rowOffset: 0, rowCount: 1))
        let bytes = try APIJSON.encode(response)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""statement_id":"s""#) && text.contains(#""type_name":"LONG""#))
        #expect(try APIJSON.decode(StatementResponse.self, from: bytes) == response)
        let error = APIErrorBody(errorCode: .number(401), message: "no")
        #expect(try APIJSON.decode(APIErrorBody.self, from: try APIJSON.encode(error)) == error)
    }
}

@Suite("SQLErrorClass")
struct SQLErrorClassTests {
    @Test(arguments: [
        ("\n[PARSE_SYNTAX_ERROR] Syntax error at or near 'INSER'. SQLSTATE: 42601 (line 1, pos 0)\n", "PARSE_SYNTAX_ERROR", "42601"),
        ("[TABLE_OR_VIEW_NOT_FOUND] The table `a`.`b` cannot be found. SQLSTATE: 42P01", "TABLE_OR_VIEW_NOT_FOUND", "42P01"),
        ("  \t[DELTA_CHANGE_DATA_FEED_NOT_ENABLED.SUB_1] x", "DELTA_CHANGE_DATA_FEED_NOT_ENABLED.SUB_1", nil),
        ("PERMISSION_DENIED: User does not have SELECT on Table x", nil, nil),
        ("oops [NOT_AT_START] SQLSTATE: 22003", nil, "22003"),
        ("[lower_case] SQLSTATE: 4260", nil, nil),
        ("[] SQLSTATE: abcde SQLSTATE: 0A000", nil, "0A000"),
        ("", nil, nil),
    ] as [(String, String?, String?)])
    func parses(message: String, errorClass: String?, sqlState: String?) {
        let parsed = SQLErrorClass.parse(message: message)
        #expect(parsed.errorClass == errorClass)
        #expect(parsed.sqlState == sqlState)
    }
}

@Suite struct ChangeTypeParsingTests {
    /// `_change_type` is parsed from the row's bytes: every documented value, and nothing else.
    @Test func parsesEveryValueAndNothingElse() {
        func parse(_ s: String) -> ChangeType? { Array(s.utf8).withUnsafeBytes { ChangeType(utf8: $0) } }
        for t in ChangeType.allCases { #expect(parse(t.rawValue) == t) }
        for s in ["", "insers", "INSERT", "delete ", "update_preimagE", "update_postimage_", "update_postimagf", "iNsert"] {
            #expect(parse(s) == nil, "\(s)")
        }
    }
}
