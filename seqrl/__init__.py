"""seqrl: offline reinforcement learning on the Hugging Face stack."""
