-- CreateIndex
CREATE INDEX "messages_created_at_id_idx" ON "messages"("created_at", "id");
