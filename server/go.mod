module github.com/scalable-chat-go/server

go 1.26.8
