import CDFSyncCore
import Foundation
import Testing

/// The recorded Databricks responses in Fixtures/recorded-sea (provenance and license in its README).
enum RecordedFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/recorded-sea")

    static var names: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.sorted()
    }

    /// The fixture's `response.body`, re-serialised as JSON bytes, and its HTTP status.
    static func body(_ name: String) throws -> (status: Int, body: [UInt8], object: [String: Any]) {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let response = try #require(root["response"] as? [String: Any])
        let status = try #require(response["status"] as? Int)
        let body = try #require(response["body"] as? [String: Any])
        let bytes = try JSONSerialization.data(withJSONObject: body)
        return (status, Array(bytes), body)
    }
}

@Suite("Recorded SEA fixtures")
struct RecordedFixtureTests {
    @Test func fixturesArePresent() {
        #expect(RecordedFixtures.names.count == 48)
    }

    @Test(arguments: RecordedFixtures.names)
    func envelopeDecoderAndModelsAcceptEveryBody(name: String) throws {
        let (status, body, object) = try RecordedFixtures.body(name)
        var decoder = ResultStreamDecoder(layout: .envelope)
        var rows: [[String?]] = []
        try body.withUnsafeBytes { b in try decoder.feed(b) { rows.append($0.strings()) } }
        let metadata = try decoder.finish()
        #expect(decoder.bytesConsumed == body.count)
        // The metadata is valid JSON equal to the body without data_array.
        var expected = object
        if var result = expected["result"] as? [String: Any] {
            result["data_array"] = nil
            expected["result"] = result
        }
        let reparsed = try #require(try JSONSerialization.jsonObject(with: Data(metadata)) as? NSDictionary)
        #expect(reparsed == expected as NSDictionary)

        if object["statement_id"] != nil {
            let response = try APIJSON.decode(StatementResponse.self, from: metadata)
            #expect(response.statementID == object["statement_id"] as? String)
            #expect(response.status?.state != nil)
            let inlineRows = (object["result"] as? [String: Any])?["data_array"] as? [[Any]]
            #expect(rows.count == inlineRows?.count ?? 0)
            if let result = response.result, let rowCount = result.rowCount, inlineRows != nil {
                #expect(Int64(rows.count) == rowCount)
            }
            if let manifest = response.manifest {
                #expect(manifest.schema.columnCount == manifest.schema.columns?.count ?? 0)
                if manifest.format == "JSON_ARRAY", manifest.totalChunkCount <= 1 {
                    #expect(Int64(rows.count) == manifest.totalRowCount)
                }
                for row in rows { #expect(row.count == manifest.schema.columnCount) }
                // Every inline value converts to its column's type.
                if let columns = manifest.schema.columns {
                    for row in rows {
                        for column in columns {
                            _ = try SQLValue.decode(text: row[column.position], column: column)
                        }
                    }
                }
            }
        } else if object["external_links"] != nil || object["chunk_index"] != nil {
            let chunk = try APIJSON.decode(ResultData.self, from: metadata)
            #expect(chunk.externalLinks?.isEmpty == false)
        } else if status >= 400 {
            let error = try APIJSON.decode(APIErrorBody.self, from: metadata)
            #expect(error.errorCode != nil)
            #expect(error.text?.isEmpty == false)
        }
    }

    @Test func inlineRowsMatchTheRecording() throws {
        let (_, body, _) = try RecordedFixtures.body("execute-inline-json-string-edge-cases.json")
        let d = try decode(body)
        #expect(d.rows == [
            ["1", "   leading and trailing spaces   "], ["2", "こんにちは"], ["3", "special chars: !@#$%^&*()"],
            ["4", "string with \"double quotes\" inside"], ["5", nil],
        ])
        let (_, ts, _) = try RecordedFixtures.body("execute-inline-json-timestamp.json")
        let t = try decode(ts)
        #expect(t.rows.first?.count == 2)
        #expect(t.rows.contains { $0.contains("2021-01-01T10:00:00.000-08:00") })
    }

    @Test(arguments: RecordedFixtures.names.filter { $0.hasPrefix("execute-inline-json") })
    func everySplitOfInlineFixtures(name: String) throws {
        let (_, body, _) = try RecordedFixtures.body(name)
        let whole = try decode(body)
        for k in stride(from: 0, through: body.count, by: 1) {
            #expect(try decode(body, cuts: [k]) == whole, "split at \(k)")
        }
    }

    @Test func failedStatementCarriesErrorClass() throws {
        let (_, body, _) = try RecordedFixtures.body("failed-parse-syntax.json")
        let metadata = try decode(body).metadata
        let response = try APIJSON.decode(StatementResponse.self, from: metadata)
        #expect(response.status?.state == .failed)
        let error = try #require(response.status?.error)
        #expect(error.errorCode == .string("BAD_REQUEST"))
        #expect(error.parsedClass.errorClass == "PARSE_SYNTAX_ERROR")
        #expect(error.parsedClass.sqlState == "42601")
    }

    @Test func externalLinksAndManifestChunks() throws {
        let (_, body, _) = try RecordedFixtures.body("execute-external-links-arrow-multichunk-0.json")
        let response = try APIJSON.decode(StatementResponse.self, from: try decode(body).metadata)
        let manifest = try #require(response.manifest)
        #expect(manifest.totalChunkCount == 2)
        #expect(manifest.totalRowCount == 122_900)
        #expect(manifest.chunks?.count == 2)
        let link = try #require(response.result?.externalLinks?.first)
        #expect(link.chunkIndex == 0)
        #expect(link.nextChunkIndex == 1)
        #expect(link.nextChunkInternalLink?.hasSuffix("/result/chunks/1") == true)
        #expect(link.externalLink.hasPrefix("https://"))
        let decimal = try #require(manifest.schema.columns?.first { $0.typeName == .decimal })
        #expect(decimal.typePrecision == 18 && decimal.typeScale == 2)

        let (_, chunkBody, _) = try RecordedFixtures.body("chunk-external-links-arrow-1.json")
        let chunk = try APIJSON.decode(ResultData.self, from: try decode(chunkBody).metadata)
        #expect(chunk.externalLinks?.first?.chunkIndex == 1)
        #expect(chunk.externalLinks?.first?.nextChunkIndex == nil)
    }

    @Test func numericErrorCodes() throws {
        let (_, body, _) = try RecordedFixtures.body("error-invalid-token-403.json")
        let error = try APIJSON.decode(APIErrorBody.self, from: body)
        #expect(error.errorCode == .number(403))
        #expect(error.message == "Invalid access token.")
        let (_, notFound, _) = try RecordedFixtures.body("error-files-api-not-found-404.json")
        let nf = try APIJSON.decode(APIErrorBody.self, from: notFound)
        #expect(nf.errorCode == .string("NOT_FOUND"))
        #expect(nf.details?.first?.type == "type.googleapis.com/google.rpc.ErrorInfo")
    }
}
