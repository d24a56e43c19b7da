module github.com/clickstreamkit/clickstream

go 1.26
