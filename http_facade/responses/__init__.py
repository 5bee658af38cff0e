"""POST /v1/responses, GET|DELETE /v1/responses/{id}, its cancel and input_items."""
