"""anvyl.gpt_oss"""
