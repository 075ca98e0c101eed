"""anvyl.agent"""
