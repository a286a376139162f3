package chat_test

import (
	"testing"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
)

func TestLocalNameClaims(t *testing.T) {
	chattest.TestNameClaims(t, func(t *testing.T) (chat.NameClaims, chat.NameClaims) {
		l := &chat.LocalNameClaims{}
		return l, l
	})
}
