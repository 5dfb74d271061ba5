"""genops"""
