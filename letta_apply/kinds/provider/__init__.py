"""The provider kind (BYOK model providers): its model, plan, requests and schema."""
